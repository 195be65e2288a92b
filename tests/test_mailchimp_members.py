"""``Audiences.members``: the whole audience, lean pages, flat memory, and exactly-once while
the audience changes under the walk (checked against a plain offset walk that gets it wrong)."""

from __future__ import annotations

import itertools
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import mailchimp_marketing
import pytest

from flask_dmmail.errors import InvalidInputError, MailchimpUnavailableError
from flask_dmmail.mailchimp import Audiences, Member, subscriber_hash
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.mailchimp_support import (
    SUPPLIERS,
    Fired,
    Instrument,
)

T0 = 1_700_000_000.0


def emails(count: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i:06d}@digital.gov.uk" for i in range(count)]


class Clock:
    """A clock the test moves by hand (the sandbox stamps last_changed with it)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(mc_state: MailchimpState) -> Clock:
    clock = Clock()
    mc_state.clock = clock
    return clock


def walk(
    members: Iterator[Any], actions: dict[int, Callable[[], None]], key: Callable[[Any], str]
) -> list[str]:
    """Consume ``members``; after the n-th one, run ``actions[n]``."""
    seen: list[str] = []
    for item in members:
        seen.append(key(item))
        action = actions.get(len(seen))
        if action is not None:
            action()
    return seen


def naive(
    sandbox: Sandbox, api_key: str, list_id: str, page: int = 1000
) -> Iterator[dict[str, Any]]:
    """Today's export: offset paging and nothing else (the control)."""
    client = mailchimp_marketing.Client({"api_key": api_key, "server": "server"})
    client.api_client.host = f"{sandbox.url}/3.0"
    offset = 0
    while True:
        data = client.lists.get_list_members_info(
            list_id,
            count=page,
            offset=offset,
            status="subscribed",
            fields=["members.email_address"],
        )
        if not data["members"]:
            return
        yield from data["members"]
        offset += page


def by_email(item: Any) -> str:
    return item.email_address if isinstance(item, Member) else item["email_address"]


def test_every_member_once_with_only_the_fields_asked_for(
    audiences: Audiences, mc_state: MailchimpState, instrument: Instrument
) -> None:
    everyone = emails(2500)
    mc_state.add_members(SUPPLIERS, everyone, merge_fields={"FNAME": "Ada"})
    mc_state.add_members(SUPPLIERS, emails(5, "u"), status="unsubscribed")
    got = list(audiences.members("suppliers", fields=["email_address", "merge_fields.FNAME"]))
    assert sorted(m.email_address for m in got) == everyone
    assert all(m.status == "subscribed" for m in got)
    assert set(got[0].fields) == {"email_address", "status", "last_changed", "merge_fields"}
    assert got[0].get("merge_fields.FNAME") == "Ada"
    assert got[0].get("merge_fields.LNAME") is None  # not asked for
    pages = instrument.paths("GET", f"/lists/{SUPPLIERS}/members")
    assert len(pages) == 3
    for request in pages:
        assert request.args["count"] == ["1000"]
        assert request.args["fields"] == [
            "members.email_address,members.status,members.last_changed,members.merge_fields.FNAME"
        ]
        assert request.args["sort_field"] == ["last_changed"]
        assert request.args["status"] == ["subscribed"]


def test_status_none_is_every_status_but_archived(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, emails(3, "s"))
    mc_state.add_members(SUPPLIERS, emails(2, "u"), status="unsubscribed")
    mc_state.add_members(SUPPLIERS, emails(2, "a"), status="archived")
    assert Counter(m.status for m in audiences.members("suppliers", status=None)) == {
        "subscribed": 3,
        "unsubscribed": 2,
    }
    assert len(list(audiences.members("suppliers", status="archived"))) == 2


def test_since_gives_the_members_changed_since(
    audiences: Audiences, mc_state: MailchimpState, clock: Clock
) -> None:
    mc_state.add_members(SUPPLIERS, emails(10, "old"))
    clock.now = T0 + 3600
    mc_state.add_members(SUPPLIERS, emails(4, "new"))
    got = [m.email_address for m in audiences.members("suppliers", since="2023-11-14T23:13:20Z")]
    assert got == emails(4, "new")


def test_bad_arguments_are_refused_before_the_walk(
    audiences: Audiences, instrument: Instrument
) -> None:
    with pytest.raises(InvalidInputError, match="list of member field names"):
        audiences.members("suppliers", fields="email_address")
    with pytest.raises(InvalidInputError, match="status"):
        audiences.members("suppliers", status="gone")
    with pytest.raises(InvalidInputError, match="since"):
        audiences.members("suppliers", since="yesterday")
    assert instrument.requests == []


def test_the_walk_is_lazy_and_memory_stays_flat(
    audiences: Audiences, mc_state: MailchimpState, instrument: Instrument
) -> None:
    mc_state.add_members(SUPPLIERS, emails(30_000))
    members = audiences.members("suppliers")
    next(members)
    assert len(instrument.paths("GET", "/members")) == 1  # one page, not the audience
    tracemalloc.start()
    try:
        count = 1 + sum(1 for _ in members)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 30_000
    # A list of 30,000 Members would take well over 20 MB; the walk holds a page or two
    # plus 8 bytes a member.
    assert peak < 6 * 1024 * 1024, peak


def test_members_removed_behind_the_walk_do_not_make_it_skip(
    audiences: Audiences, mc_state: MailchimpState, clock: Clock, notify_sandbox: Sandbox
) -> None:
    everyone = emails(3500)
    mc_state.add_members(SUPPLIERS, everyone)  # all in one last_changed second
    behind = everyone[100:160]  # yielded by then
    ahead = everyone[3000:3010]  # not yet

    def remove() -> None:
        for address in behind + ahead:
            mc_state.archive_member(SUPPLIERS, address)

    got = walk(audiences.members("suppliers"), {1200: remove}, by_email)
    assert len(got) == len(set(got))  # nobody twice
    assert set(got) == set(everyone) - set(ahead)  # nobody who stayed was skipped

    # The control: plain offset paging under the same change skips members who stayed.
    mc_state.reset()
    mc_state.clock = clock
    mc_state.ensure_list(SUPPLIERS, "Suppliers")
    mc_state.add_members(SUPPLIERS, everyone)
    plain = walk(naive(notify_sandbox, mc_state.api_key, SUPPLIERS), {1200: remove}, by_email)
    assert set(everyone) - set(ahead) - set(plain), "the control should skip members"


def test_a_few_removals_are_covered_by_the_overlap(
    audiences: Audiences, mc_state: MailchimpState, clock: Clock, instrument: Instrument
) -> None:
    everyone = emails(2500)
    mc_state.add_members(SUPPLIERS, everyone)

    def remove() -> None:
        for address in everyone[10:15]:
            mc_state.archive_member(SUPPLIERS, address)

    got = walk(audiences.members("suppliers"), {1100: remove}, by_email)
    assert sorted(got) == everyone
    offsets = [r.args["offset"][0] for r in instrument.paths("GET", "/members")]
    assert offsets == ["0", "984", "1968"]  # no re-read from the start was needed


def test_members_added_during_the_walk_come_once(
    audiences: Audiences, mc_state: MailchimpState, clock: Clock
) -> None:
    everyone = emails(2200)
    late = emails(300, "late")
    mc_state.add_members(SUPPLIERS, everyone)

    def add() -> None:
        mc_state.add_members(SUPPLIERS, late)

    got = walk(audiences.members("suppliers"), {500: add}, by_email)
    assert Counter(got) == Counter(everyone + late)


def test_members_changed_during_the_walk_come_once_and_the_unsubscribed_not_at_all(
    audiences: Audiences, mc_state: MailchimpState, clock: Clock, notify_sandbox: Sandbox
) -> None:
    everyone = emails(3000)
    mc_state.add_members(SUPPLIERS, everyone, merge_fields={"FNAME": "before"})
    done_early = everyone[50:80]  # yielded before the change
    not_yet = everyone[2500:2530]  # changed before they are reached
    leaving = everyone[2600:2610]  # unsubscribe before they are reached
    left_behind = everyone[10:15]  # unsubscribe after they were yielded

    def change() -> None:
        clock.now = T0 + 10
        for address in done_early + not_yet:
            mc_state.update_member(
                SUPPLIERS, subscriber_hash(address), {"merge_fields": {"FNAME": "after"}}, ""
            )
        for address in leaving + left_behind:
            mc_state.unsubscribe(SUPPLIERS, address)

    members = audiences.members("suppliers", fields=["email_address", "merge_fields.FNAME"])
    got: list[Member] = []
    for member in members:
        got.append(member)
        if len(got) == 1500:
            change()
    addresses = [m.email_address for m in got]
    assert len(addresses) == len(set(addresses))
    assert set(addresses) == set(everyone) - set(leaving)
    names = {m.email_address: m.get("merge_fields.FNAME") for m in got}
    assert {names[a] for a in not_yet} == {"after"}  # met after their change
    assert {names[a] for a in done_early} == {"before"}  # met once, before it

    # The control repeats or skips members under the same change.
    mc_state.reset()
    mc_state.clock = clock
    clock.now = T0
    mc_state.ensure_list(SUPPLIERS, "Suppliers")
    mc_state.add_members(SUPPLIERS, everyone, merge_fields={"FNAME": "before"})
    plain = walk(naive(notify_sandbox, mc_state.api_key, SUPPLIERS), {1500: change}, by_email)
    assert len(plain) != len(set(plain)) or set(plain) != set(everyone) - set(leaving)


def test_changes_spread_over_many_seconds(
    audiences: Audiences, mc_state: MailchimpState, clock: Clock
) -> None:
    everyone = emails(2400)
    for i in range(0, 2400, 150):  # 16 different seconds
        clock.now = T0 + i
        mc_state.add_members(SUPPLIERS, everyone[i : i + 150])
    clock.now = T0 + 5000
    removed = everyone[1190:1250]
    moved = everyone[0:40] + everyone[2000:2040]

    def churn() -> None:
        for address in removed:
            mc_state.archive_member(SUPPLIERS, address)
        for address in moved:
            mc_state.update_member(SUPPLIERS, subscriber_hash(address), {"vip": True}, "")
        mc_state.add_members(SUPPLIERS, ["brand-new@digital.gov.uk"])

    got = walk(audiences.members("suppliers"), {1300: churn}, by_email)
    assert len(got) == len(set(got))
    # The removed ones had been yielded before they left (they were among the first 1,300).
    assert set(got) == set(everyone) | {"brand-new@digital.gov.uk"}
    assert got[-41:] == [*everyone[2000:2040], "brand-new@digital.gov.uk"]  # moved to the end


def test_a_failure_during_the_walk_raises_from_the_generator(
    audiences: Audiences,
    mc_state: MailchimpState,
    notify_sandbox: Sandbox,
    fired: list[Fired],
) -> None:
    mc_state.add_members(SUPPLIERS, emails(1500))
    members = audiences.members("suppliers")
    first = [next(members) for _ in range(1000)]
    assert len(first) == 1000
    notify_sandbox.state.set_faults(error_rate=1.0, paths=("/3.0/",))
    with pytest.raises(MailchimpUnavailableError):
        next(members)
    [event] = [e for e in fired if e.signal == "mailchimp_failed"]
    assert event.kwargs["operation"] == "members"
    assert event.kwargs["audience"] == SUPPLIERS


def test_a_walk_needs_no_clock_agreement(audiences: Audiences, mc_state: MailchimpState) -> None:
    # Members stamped far in the future or the past are walked the same way.
    mc_state.clock = lambda: time.time() + 10 * 365 * 86400
    mc_state.add_members(SUPPLIERS, emails(1200, "future"))
    mc_state.clock = lambda: 86400.0
    mc_state.add_members(SUPPLIERS, emails(1200, "past"))
    got = [m.email_address for m in audiences.members("suppliers")]
    assert got == emails(1200, "past") + emails(1200, "future")


def test_many_members_leaving_behind_the_walk_make_it_step_back_not_loop(
    audiences: Audiences, mc_state: MailchimpState, clock: Clock, instrument: Instrument
) -> None:
    everyone = emails(6000)
    mc_state.add_members(SUPPLIERS, everyone)  # one last_changed second
    first_burst = everyone[0:40]
    second_burst = everyone[100:2600]

    def remove(addresses: list[str]) -> Callable[[], None]:
        def action() -> None:
            for address in addresses:
                mc_state.archive_member(SUPPLIERS, address)

        return action

    got = walk(
        audiences.members("suppliers"),
        {1500: remove(first_burst), 3100: remove(second_burst)},
        by_email,
    )
    assert len(got) == len(set(got))
    assert set(got) == set(everyone)  # every removed member had been yielded before it left
    pages = instrument.paths("GET", "/members")
    assert len(pages) < 20  # stepped back a few times, then went on
    offsets = [int(r.args["offset"][0]) for r in pages]
    assert any(b < a for a, b in itertools.pairwise(offsets))  # it did step back
