"""The root state: the Notify state and the Mailchimp state side by side, fanned out to."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.sandbox import Sandbox, SandboxState
from flask_dmmail.sandbox.lifecycle import Notifications
from flask_dmmail.sandbox.limits import Limits
from flask_dmmail.sandbox.mailchimp import MailchimpState
from flask_dmmail.sandbox.notify_state import NotifyState
from tests.sandbox.notify_helpers import PLAIN_ID, SEED

MAILCHIMP_SEED = {"lists": [{"id": "a1b2c3d4e5", "name": "Seeded audience"}]}


def _list_names(state: MailchimpState) -> list[str]:
    return sorted(str(audience["name"]) for audience in state.lists())


def test_the_root_holds_the_notify_and_mailchimp_states_side_by_side() -> None:
    state = SandboxState({**copy.deepcopy(SEED), "mailchimp": MAILCHIMP_SEED})
    try:
        assert isinstance(state.notify, NotifyState)
        assert isinstance(state.mailchimp, MailchimpState)
        assert not hasattr(state.notify, "mailchimp")
        assert _list_names(state.mailchimp) == ["Seeded audience"]
    finally:
        state.close()


def test_reset_and_seed_fan_out_to_both_states() -> None:
    seed: dict[str, Any] = {**copy.deepcopy(SEED), "mailchimp": MAILCHIMP_SEED}
    with Sandbox.start(seed=seed) as sandbox:
        state = sandbox.state
        client = NotificationsAPIClient(sandbox.keys.test, base_url=sandbox.url)
        client.send_email_notification("a@example.com", PLAIN_ID)
        state.mailchimp.create_list("Made in the test")
        state.seed({"mailchimp": {"lists": [{"id": "f6e5d4c3b2", "name": "Seeded later"}]}})
        state.set_faults(error_rate=1.0, paths=["/3.0/"])
        state.set_limits(rate_limit=5)
        state.revoke_key("team")
        assert len(state.outbox()) == 1
        assert len(state.mailchimp.lists()) == 3

        state.reset()

        assert state.outbox() == []
        assert _list_names(state.mailchimp) == ["Seeded audience"]
        assert state.faults.active is False
        settings = state.to_dict()
        assert (settings["rate_limit"], settings["revoked"]) == (3000, [])
        assert state.notify.template(PLAIN_ID) is not None


def test_the_notify_state_takes_no_mailchimp_seed() -> None:
    with pytest.raises(ValueError, match=r"^seed: unknown keys mailchimp$"):
        NotifyState({"mailchimp": MAILCHIMP_SEED})


def test_a_bad_mailchimp_part_is_refused_by_the_root() -> None:
    with pytest.raises(ValueError, match="mailchimp"):
        SandboxState({"mailchimp": {"lists": "not a list"}})


#: The root's Notify controls and the methods they hand over to.
PASS_THROUGHS: dict[str, Callable[..., Any]] = {
    "outbox": Notifications.outbox,
    "get": Notifications.get,
    "force_status": Notifications.force_status,
    "add_status_listener": Notifications.add_status_listener,
    "remove_status_listener": Notifications.remove_status_listener,
    "set_limits": Limits.set_limits,
    "set_service": NotifyState.set_service,
    "revoke_key": NotifyState.revoke_key,
    "add_template": NotifyState.add_template,
    "archive_template": NotifyState.archive_template,
}


@pytest.mark.parametrize("name", sorted(PASS_THROUGHS))
def test_the_roots_notify_controls_keep_the_notify_signatures(name: str) -> None:
    target = PASS_THROUGHS[name]
    root = getattr(SandboxState, name)
    assert inspect.signature(root) == inspect.signature(target)
    assert root.__doc__ == target.__doc__
