"""What ``flask dmmail status --reference`` says about queued emails (``send_later``): each
one the queue knows, told apart as queued, being sent, waiting to be tried again, sent,
skipped, or failed for good (kept for inspection). Never the recipient: the queue's states
hold none."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from ..notify import NotificationStatus
from ..queued import FAILED, QUEUED, RETRYING, SENDING, SENT, SKIPPED, QueuedStatus

__all__ = ["merge", "queued_document", "queued_lines"]

#: The status a queued email's document and text show, by its state.
STATUS_LABELS = {
    QUEUED: "queued",
    SENDING: "sending",
    RETRYING: "retrying",
    SENT: "sent",
    SKIPPED: "skipped",
    FAILED: "failed-for-good",
}


def _described(status: QueuedStatus) -> str:
    if status.state == QUEUED:
        return "queued (waiting for a worker)"
    if status.state == SENDING:
        return "sending (a worker has it)"
    if status.state == RETRYING:
        return f"retrying (failed transiently with {status.error_class}; queued again)"
    if status.state == SENT:
        return f"sent (notification {status.notification_id})"
    if status.state == SKIPPED:
        return "skipped (already sent: allow_resend=False)"
    return f"failed for good ({status.error_class}); the email is kept for inspection"


def merge(
    queued: Sequence[QueuedStatus], found: Sequence[NotificationStatus]
) -> tuple[list[QueuedStatus], dict[str, str]]:
    """The queued emails Notify's list does not show (newest first), and the task id of
    each notification that was a queued email."""
    ids = {n.id for n in found}
    tasks = {s.notification_id: s.task_id for s in queued if s.notification_id in ids}
    alone = [s for s in queued if s.notification_id not in ids]
    return alone, {k: v for k, v in tasks.items() if k is not None}


def queued_document(status: QueuedStatus) -> dict[str, Any]:
    """A queued email as ``--json`` prints it (``id`` is its notification's, or None)."""
    return {
        "id": status.notification_id,
        "task_id": status.task_id,
        "status": STATUS_LABELS.get(status.state, status.state),
        "reference": status.reference,
        "template_id": status.template_id,
        "queued_at": status.queued_at,
        "updated_at": status.updated_at,
        "attempts": status.attempts,
        "error_class": status.error_class,
        "error": status.error,
    }


def queued_lines(status: QueuedStatus) -> None:
    """Print one queued email as ``status`` prints a notification."""
    click.echo(f"task id: {status.task_id}")
    click.echo(f"status: {_described(status)}")
    if status.error and status.state in (RETRYING, FAILED):
        click.echo(f"error: {status.error}")
    click.echo(f"reference: {status.reference}")
    click.echo(f"template: {status.template_id}")
    click.echo(f"queued at: {status.queued_at}")
    click.echo(f"updated at: {status.updated_at}")
    click.echo(f"attempts: {status.attempts}")
