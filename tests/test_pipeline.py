"""The send pipeline's public surface (what bulk sends and queued sends use instead of the
Mailer's internals), and one signature per send function."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail import DMMail, Mailer, PreparedEmail, signals
from flask_dmmail.errors import InvalidEmailAddressError
from flask_dmmail.pipeline import SendPipeline
from flask_dmmail.sandbox import Sandbox

from .conftest import RecordAll
from .secrets_scan import register_secret

ADDRESS = "pipeline.person@example.gov.uk"
PERSONAL = {"name": "Pipelinename Qx", "framework": "Pipelineframework Zq"}


def _shape(function: Callable[..., Any], *, without: str = "") -> list[tuple[str, Any, Any]]:
    """Each parameter's name, kind and default (not its annotation)."""
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(function).parameters.values()
        if p.name != without
    ]


# -- one signature each --------------------------------------------------------------------------


@pytest.mark.parametrize("owner", [Mailer, SendPipeline])
def test_send_takes_the_parameters_of_prepare_and_allow_resend(
    owner: type[Mailer] | type[SendPipeline],
) -> None:
    send = inspect.signature(owner.send).parameters
    assert send["allow_resend"].kind is inspect.Parameter.KEYWORD_ONLY
    assert send["allow_resend"].default is True
    assert _shape(owner.send, without="allow_resend") == _shape(owner.prepare)


def test_send_and_prepare_share_one_typed_signature() -> None:
    send = inspect.signature(Mailer.send).parameters
    prepare = inspect.signature(Mailer.prepare).parameters
    assert {n: p.annotation for n, p in send.items() if n != "allow_resend"} == {
        n: p.annotation for n, p in prepare.items()
    }


@pytest.mark.parametrize("name", ["send", "prepare", "send_prepared"])
def test_the_mailer_and_the_pipeline_take_the_same_parameters(name: str) -> None:
    assert _shape(getattr(Mailer, name)) == _shape(getattr(SendPipeline, name))


@pytest.mark.parametrize("name", ["send", "prepare"])
def test_the_extension_object_has_the_mailers_signature(app: Flask, name: str) -> None:
    dmmail = DMMail()
    mailer = DMMail.mailer(app)
    assert inspect.signature(getattr(dmmail, name)) == inspect.signature(getattr(mailer, name))
    assert getattr(DMMail, name).__qualname__ == f"DMMail.{name}"
    assert f"Mailer.{name}" in (getattr(DMMail, name).__doc__ or "")


def test_the_extension_object_prepares_on_the_current_app(app: Flask, mailer: Mailer) -> None:
    register_secret(ADDRESS, *PERSONAL.values(), kind="test input")
    with app.app_context():
        email = DMMail().prepare(ADDRESS, "welcome", PERSONAL, reference="ref-1")
    assert isinstance(email, PreparedEmail)
    assert email == mailer.prepare(ADDRESS, "welcome", PERSONAL, reference="ref-1")


# -- the surface bulk uses -----------------------------------------------------------------------


def test_prepare_announces_nothing_and_send_announces_a_refusal_once(
    app: Flask, mailer: Mailer
) -> None:
    failures: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        assert sender is app
        failures.append(kwargs)

    with signals.email_failed.connected_to(receiver, sender=app):
        with pytest.raises(InvalidEmailAddressError):
            mailer.pipeline.prepare("not an address", "welcome", PERSONAL)
        assert failures == []
        with pytest.raises(InvalidEmailAddressError):
            mailer.pipeline.send("not an address", "welcome", PERSONAL)
    assert len(failures) == 1
    assert isinstance(failures[0]["error"], InvalidEmailAddressError)
    assert failures[0]["reference"] is None


def test_a_post_notify_stored_is_recovered_announced_and_remembered(
    app: Flask, mailer: Mailer, sandbox: Sandbox, all_logs: RecordAll
) -> None:
    """A send that failed as far as its sender knows, but that Notify stored: bulk finds it
    and takes it as sent, as the send path does after a dropped connection."""
    register_secret(ADDRESS, *PERSONAL.values(), kind="test input")
    pipeline = mailer.pipeline
    email = pipeline.prepare(ADDRESS, "welcome", PERSONAL)
    # Notify stores the email, but its answer never reached the sender.
    stored = NotificationsAPIClient(sandbox.keys.test, base_url=sandbox.url)
    stored.send_email_notification(
        email_address=ADDRESS,
        template_id=email.template_id,
        personalisation=PERSONAL,
        reference=email.reference,
    )
    found = pipeline.find_reference(email.reference)
    assert found is not None and found.reference == email.reference

    sent_signals: list[Any] = []

    def receiver(sender: Flask, email: Any, **_: Any) -> None:
        assert sender is app
        sent_signals.append(email)

    with signals.email_sent.connected_to(receiver, sender=app):
        sent = pipeline.recovered(email, found)
    assert sent.id == found.id and sent.reference == email.reference
    assert sent.to == ADDRESS and not sent.redirected
    assert sent_signals == [sent]
    lines = [r for r in all_logs.records if r.name == "flask_dmmail" and r.levelno == logging.INFO]
    assert len(lines) == 1
    assert "found already stored after a failed attempt" in lines[-1].getMessage()
    assert lines[-1].__dict__["recovered"] is True
    assert lines[-1].__dict__["to_hash"] == email.to_hash

    # Remembered: even once Notify reports it failed, this process does not send it again.
    sandbox.state.force_status(found.id, "permanent-failure")
    assert pipeline.send_prepared(email, allow_resend=False) is None
    assert len(sandbox.state.outbox()) == 1


def test_the_announcer_reports_a_skip_as_the_send_path_does(
    app: Flask, mailer: Mailer, make_app: Callable[..., Flask]
) -> None:
    register_secret(ADDRESS, *PERSONAL.values(), kind="test input")
    email = mailer.prepare(ADDRESS, "welcome", PERSONAL)
    skipped: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        assert sender is app
        skipped.append(kwargs)

    with signals.email_skipped.connected_to(receiver, sender=app):
        mailer.pipeline.announce.skipped(email)
        mailer.send(ADDRESS, "welcome", PERSONAL, allow_resend=False)
        mailer.send(ADDRESS, "welcome", PERSONAL, allow_resend=False)  # skipped
    assert len(skipped) == 2 and skipped[0] == skipped[1]
    assert skipped[0] == {
        "reference": email.reference,
        "template_id": email.template_id,
        "to_hash": email.to_hash,
    }


def test_mailer_send_bulk_takes_exactly_the_parameters_of_bulk_send_bulk() -> None:
    # Mailer.send_bulk forwards to flask_dmmail.bulk.send_bulk (imported on first use): the
    # two spell one signature, so a parameter added to one must be added to the other.
    from flask_dmmail.bulk import send_bulk

    mailer = inspect.signature(Mailer.send_bulk).parameters
    function = inspect.signature(send_bulk).parameters
    assert [(p.name, p.kind, p.default) for p in list(mailer.values())[1:]] == [
        (p.name, p.kind, p.default) for p in list(function.values())[1:]
    ]
    assert {n: str(p.annotation) for n, p in list(mailer.items())[1:]} == {
        n: str(p.annotation) for n, p in list(function.items())[1:]
    }
