"""The stage guard: outside production every operation that names an audience is limited to
DM_MAILCHIMP_AUDIENCES, through the API, bulk sending and the CLI, in a staging app and in the
embedded sandbox; production may use any audience of the account.

Each refusal is checked where it matters: the sandbox got no request for the unlisted list,
and its members are as they were."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask

from flask_dmmail import DMMail, Mailer
from flask_dmmail.bulk import AudienceSource
from flask_dmmail.errors import DMMailError, UnlistedAudienceError
from flask_dmmail.mailchimp import AudienceRef, Audiences, subscriber_hash
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState, member_address
from tests.mailchimp_support import BUYERS, SUPPLIERS, Instrument
from tests.secrets_scan import register_secret

HTML = "<p>New briefs.</p><p>*|UNSUB|*</p>"
# The members of production's own audience (the one every other stage must leave alone).
REAL = [f"real.supplier{i}@example.gov.uk" for i in range(5)]
PERSON = "grace.hopper@example.gov.uk"
VALUES = {"name": "Supplier", "framework": "G-Cloud 15"}


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(*REAL, PERSON, kind="address")


@pytest.fixture
def unlisted(mc_state: MailchimpState) -> str:
    """A list of the same account that this stage's DM_MAILCHIMP_AUDIENCES does not name."""
    list_id = mc_state.create_list("Digital Outcomes suppliers (production)")
    mc_state.add_members(list_id, REAL, merge_fields={"FNAME": "Real"})
    mc_state.add_members(list_id, [PERSON])
    return list_id


def snapshot(state: MailchimpState, list_id: str) -> list[tuple[str, str, Any]]:
    """Every member of the list (any status) with its status and merge fields."""
    return sorted(
        (m["email_address"], m["status"], m.get("merge_fields"))
        for m in (
            state.get_member(list_id, subscriber_hash(address), "") for address in [*REAL, PERSON]
        )
    )


def touched(instrument: Instrument, list_id: str) -> list[str]:
    """The requests that named ``list_id``, in their path or their query."""
    return [
        f"{seen.method} {seen.path}"
        for seen in instrument.paths()
        if list_id in seen.path or any(list_id in v for vs in seen.args.values() for v in vs)
    ]


def nothing_sent(sandbox: Sandbox) -> bool:
    return sandbox.state.outbox() == []


# --------------------------------------------------------------------------- the API

OPERATIONS: dict[str, Callable[[Audiences, str], object]] = {
    "members": lambda mc, a: list(mc.members(a)),
    "member_count": lambda mc, a: mc.member_count(a),
    "audience": lambda mc, a: mc.audience(a),
    "subscribe": lambda mc, a: mc.subscribe(a, "new.person@example.gov.uk"),
    "subscribe existing": lambda mc, a: mc.subscribe(a, PERSON, merge_fields={"FNAME": "X"}),
    "subscribe_many": lambda mc, a: mc.subscribe_many(a, ["new.person@example.gov.uk", PERSON]),
    "forget": lambda mc, a: mc.forget(PERSON, a),
    # Nothing listens there: the sandbox's check of the URL fails without leaving the machine.
    "add_webhook": lambda mc, a: mc.add_webhook(a, "http://127.0.0.1:9/hook"),
    "create_audience_like": lambda mc, a: mc.create_audience_like(a, "DOS 8 suppliers"),
    "send_campaign": lambda mc, a: mc.send_campaign(a, title="t", subject="s", html=HTML),
    "find_campaign": lambda mc, a: mc.find_campaign(a, "t"),
    "audience ref": lambda mc, a: mc.member_count(AudienceRef(a, "made up")),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_outside_production_no_operation_reaches_an_unlisted_audience(
    audiences: Audiences,
    mc_state: MailchimpState,
    unlisted: str,
    instrument: Instrument,
    operation: str,
) -> None:
    before = snapshot(mc_state, unlisted)
    lists = len(mc_state.lists())
    with pytest.raises(UnlistedAudienceError, match="DM_MAILCHIMP_AUDIENCES") as caught:
        OPERATIONS[operation](audiences, unlisted)
    assert isinstance(caught.value, DMMailError)
    assert "DM_ENVIRONMENT" in caught.value.message
    assert instrument.requests == []  # refused before any request at all
    assert snapshot(mc_state, unlisted) == before
    assert len(mc_state.lists()) == lists and mc_state.campaigns() == []
    assert mc_state.get_webhooks(unlisted, "")["webhooks"] == []


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_production_may_use_any_audience(
    production_audiences: Audiences,
    mc_state: MailchimpState,
    unlisted: str,
    instrument: Instrument,
    operation: str,
) -> None:
    try:
        OPERATIONS[operation](production_audiences, unlisted)
    except UnlistedAudienceError:  # pragma: no cover - the failure this test is about
        pytest.fail(f"production refused {operation} on an unlisted audience")
    except DMMailError:
        pass  # e.g. find_campaign's or Mailchimp's own refusals: the request was made
    assert touched(instrument, unlisted)
    if operation == "create_audience_like":
        assert "DOS 8 suppliers" in [x["name"] for x in mc_state.lists()]


def test_a_listed_audience_still_works_by_name_and_by_id(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [PERSON])
    assert audiences.member_count("suppliers") == 1
    assert audiences.member_count(SUPPLIERS) == 1
    assert audiences.member_count(AudienceRef(BUYERS, "Buyers")) == 0
    assert [m.email_address for m in audiences.members(SUPPLIERS)] == [PERSON]


def test_outside_production_forget_without_audience_walks_the_listed_audiences_only(
    audiences: Audiences, mc_state: MailchimpState, unlisted: str, instrument: Instrument
) -> None:
    mc_state.add_members(SUPPLIERS, [PERSON])
    before = snapshot(mc_state, unlisted)
    assert audiences.audiences_for(PERSON) == [AudienceRef(SUPPLIERS, "Suppliers")]
    result = audiences.forget(PERSON)
    assert result.deleted == (SUPPLIERS,) and result.not_found == ()
    assert mc_state.member_count(SUPPLIERS, None) == 0
    # production's list keeps the member, and was never named in a request
    assert snapshot(mc_state, unlisted) == before
    assert touched(instrument, unlisted) == []


def test_production_forget_without_audience_erases_everywhere(
    production_audiences: Audiences, mc_state: MailchimpState, unlisted: str
) -> None:
    mc_state.add_members(SUPPLIERS, [PERSON])
    assert set(production_audiences.audiences_for(PERSON)) == {
        AudienceRef(SUPPLIERS, "Suppliers"),
        AudienceRef(unlisted, "Digital Outcomes suppliers (production)"),
    }
    result = production_audiences.forget(PERSON)
    assert set(result.deleted) == {SUPPLIERS, unlisted}
    assert mc_state.member_count(unlisted, None) == len(REAL)


def test_outside_production_all_audiences_and_find_audience_see_the_listed_ones_only(
    audiences: Audiences, production_audiences: Audiences, unlisted: str
) -> None:
    assert set(audiences.all_audiences()) == {
        AudienceRef(SUPPLIERS, "Suppliers"),
        AudienceRef(BUYERS, "Buyers"),
    }
    assert audiences.find_audience("Digital Outcomes suppliers (production)") is None
    assert audiences.find_audience("Buyers") == BUYERS
    assert AudienceRef(unlisted, "Digital Outcomes suppliers (production)") in (
        production_audiences.all_audiences()
    )
    assert production_audiences.find_audience("Digital Outcomes suppliers (production)") == (
        unlisted
    )


def test_outside_production_no_audience_is_created_even_from_a_listed_source(
    audiences: Audiences, mc_state: MailchimpState, instrument: Instrument
) -> None:
    with pytest.raises(UnlistedAudienceError, match="only created on production"):
        audiences.create_audience_like("suppliers", "DOS 8 suppliers")
    assert instrument.requests == []
    assert len(mc_state.lists()) == 2


# --------------------------------------------------------------------------- the embedded sandbox


@pytest.fixture
def sandbox_app() -> Iterator[Flask]:
    app = Flask("mc_guard_sandbox")
    app.config.update(
        TESTING=True,
        DM_MAIL_SANDBOX=True,
        DM_MAILCHIMP_AUDIENCES={"suppliers": "abcabcabca"},
    )
    DMMail(app)
    try:
        yield app
    finally:
        app.extensions["dmmail"].close()


def test_the_embedded_sandbox_keeps_the_same_rule(sandbox_app: Flask) -> None:
    mailer = sandbox_app.extensions["dmmail"]
    assert mailer.sandbox is not None
    state = mailer.sandbox.state.mailchimp
    other = state.create_list("Another audience")
    state.add_members(other, [PERSON])
    mailchimp = mailer.mailchimp
    assert not mailchimp.production
    for call in (
        lambda: mailchimp.subscribe(other, "new.person@example.gov.uk"),
        lambda: list(mailchimp.members(other)),
        lambda: mailchimp.forget(PERSON, other),
        lambda: mailchimp.create_audience_like("suppliers", "Copy"),
    ):
        with pytest.raises(UnlistedAudienceError):
            call()
    assert mailchimp.forget(PERSON).audiences == ()
    assert state.member_count(other, None) == 1
    assert mailchimp.subscribe("suppliers", member_address("grace.hopper")).on_list


# --------------------------------------------------------------------------- bulk sending


def mailer_of(app: Flask) -> Mailer:
    mailer = app.extensions["dmmail"]
    assert isinstance(mailer, Mailer)
    return mailer


def test_outside_production_a_bulk_send_from_an_unlisted_audience_is_refused(
    mc_app: Flask,
    sandbox: Sandbox,
    mc_state: MailchimpState,
    unlisted: str,
    instrument: Instrument,
    tmp_path: Path,
) -> None:
    before = snapshot(mc_state, unlisted)
    with pytest.raises(DMMailError, match="DM_MAILCHIMP_AUDIENCES") as caught:
        mailer_of(mc_app).send_bulk(
            "welcome", AudienceSource(unlisted, personalisation=VALUES), journal=tmp_path / "j"
        )
    causes = [caught.value, caught.value.__cause__]
    assert any(isinstance(error, UnlistedAudienceError) for error in causes)
    assert touched(instrument, unlisted) == []
    assert nothing_sent(sandbox)
    assert snapshot(mc_state, unlisted) == before


def test_production_may_bulk_send_to_any_audience(
    production_app: Flask, sandbox: Sandbox, mc_state: MailchimpState, unlisted: str, tmp_path: Path
) -> None:
    report = mailer_of(production_app).send_bulk(
        "welcome", AudienceSource(unlisted, personalisation=VALUES), journal=tmp_path / "j"
    )
    assert report.ok and report.sent == len(REAL) + 1
    assert sorted(n.email_address for n in sandbox.state.outbox()) == sorted([*REAL, PERSON])


# --------------------------------------------------------------------------- the CLI


def cli(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["dmmail", *args])


def assert_refused(result: Result) -> None:
    assert result.exit_code == 1, result.output
    assert "DM_MAILCHIMP_AUDIENCES" in result.stderr or "production" in result.stderr
    assert "Traceback" not in result.output
    assert not any(address in result.output for address in [*REAL, PERSON])


def test_outside_production_bulk_send_refuses_an_unlisted_audience(
    mc_app: Flask,
    sandbox: Sandbox,
    mc_state: MailchimpState,
    unlisted: str,
    instrument: Instrument,
    tmp_path: Path,
) -> None:
    before = snapshot(mc_state, unlisted)
    result = cli(
        mc_app, "bulk-send", "welcome", "--audience", unlisted, "--journal", str(tmp_path / "j")
    )
    assert result.exit_code != 0, result.output
    assert "DM_MAILCHIMP_AUDIENCES" in result.output
    assert "Traceback" not in result.output
    assert touched(instrument, unlisted) == []
    assert nothing_sent(sandbox)
    assert snapshot(mc_state, unlisted) == before


@pytest.mark.parametrize(
    "command",
    [
        ["subscribe", "{list}", "new.person@example.gov.uk"],
        ["subscribe", "{list}", "new.person@example.gov.uk", "--dry-run"],
        ["export", "{list}"],
        ["export", "{list}", "--status", "all"],
        ["forget", "--audience", "{list}", "grace.hopper@example.gov.uk"],
        ["forget", "--audience", "{list}", "grace.hopper@example.gov.uk", "--dry-run"],
        ["create-audience", "{list}", "DOS 8 suppliers"],
        ["create-audience", "suppliers", "DOS 8 suppliers"],
        ["create-audience", "suppliers", "DOS 8 suppliers", "--dry-run"],
        ["send-campaign", "{list}", "--title", "t", "--subject", "s", "--html-file", "{html}"],
    ],
)
def test_outside_production_mailchimp_commands_refuse_an_unlisted_audience(
    mc_app: Flask,
    mc_state: MailchimpState,
    unlisted: str,
    instrument: Instrument,
    tmp_path: Path,
    command: list[str],
) -> None:
    html = tmp_path / "alert.html"
    html.write_text(HTML)
    before = snapshot(mc_state, unlisted)
    args = [part.format(list=unlisted, html=html) for part in command]
    result = cli(mc_app, "mailchimp", *args)
    assert_refused(result)
    assert touched(instrument, unlisted) == []
    assert snapshot(mc_state, unlisted) == before
    assert len(mc_state.lists()) == 3 and mc_state.campaigns() == []


def test_outside_production_forget_command_leaves_unlisted_audiences_alone(
    mc_app: Flask, mc_state: MailchimpState, unlisted: str, instrument: Instrument
) -> None:
    mc_state.add_members(BUYERS, [PERSON])
    before = snapshot(mc_state, unlisted)
    dry = cli(mc_app, "mailchimp", "forget", "--dry-run", PERSON)
    assert dry.exit_code == 0 and f"would delete from 1 audience: {BUYERS}" in dry.stdout
    done = cli(mc_app, "mailchimp", "forget", PERSON)
    assert done.exit_code == 0 and f"#1: deleted from 1 audience: {BUYERS}" in done.stdout
    assert snapshot(mc_state, unlisted) == before
    assert touched(instrument, unlisted) == []


def test_production_commands_may_use_any_audience(
    production_app: Flask, mc_state: MailchimpState, unlisted: str, tmp_path: Path
) -> None:
    out = tmp_path / "members.csv"
    exported = cli(production_app, "mailchimp", "export", unlisted, "--output", str(out))
    assert exported.exit_code == 0, exported.output
    assert len(out.read_text().splitlines()) == len(REAL) + 2  # the header and every member
    forgot = cli(production_app, "mailchimp", "forget", "--audience", unlisted, PERSON)
    assert forgot.exit_code == 0 and f"deleted from 1 audience: {unlisted}" in forgot.stdout
    assert mc_state.member_count(unlisted, None) == len(REAL)
