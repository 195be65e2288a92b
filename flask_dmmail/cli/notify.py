"""``flask dmmail send | preview | status | outbox | sandbox``: Notify from the command line.

Every command acts on the app's Mailer, so it uses the app's key, templates, redirects and
retries; the API key comes from the app's config or the environment, never from an
argument. Output never holds an address or a personalisation value: ``send`` prints the
notification id, reference, template and whether the address was redirected; ``status``
and ``outbox`` print statuses, not recipients. ``preview`` prints lengths and placeholder
names unless ``--show-body`` asks for the filled subject and body.

Exit codes: 0 done (including a send skipped by ``--no-resend``), 1 refused (bad input,
Notify said no, not found), 2 usage error, 75 transient (rate limit, Notify unavailable:
try again later).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click
from flask.cli import with_appcontext

from ..errors import DMMailError
from ..notify import EMAIL_STATUSES, NotificationStatus
from .wording import one_line_per_failure, plural

if TYPE_CHECKING:
    from ..extension import Mailer

__all__ = ["register"]

EXIT_REFUSED = 1
EXIT_TRANSIENT = 75
#: What ``outbox --status`` takes: an email status, or "failed" for any failure.
STATUS_FILTERS = (*EMAIL_STATUSES, "failed")

_F = TypeVar("_F", bound=Callable[..., Any])


class MailCommandError(click.ClickException):
    """A DMMailError, shown as ``Error: <message>`` on stderr without a traceback."""

    exit_code = EXIT_REFUSED


class TransientMailCommandError(MailCommandError):
    """A transient DMMailError (rate limit, Notify unavailable): worth trying again later."""

    exit_code = EXIT_TRANSIENT


@contextmanager
def _mail_errors() -> Iterator[None]:
    """A DMMailError leaving the block is the command's one line of error output (the
    library's own log lines about it are not printed as well: see ``wording``)."""
    try:
        with one_line_per_failure():
            yield
    except DMMailError as error:
        cls = TransientMailCommandError if error.transient else MailCommandError
        raise cls(error.message) from None


def _mailer() -> Mailer:
    from ..extension import DMMail

    return DMMail.mailer()


def _personalisation(
    ctx: click.Context, param: click.Parameter, items: Sequence[str]
) -> dict[str, str]:
    """``KEY=VALUE`` items as a dict. Errors name the item's position, never its value."""
    values: dict[str, str] = {}
    for position, item in enumerate(items, start=1):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(
                f"item {position} is not KEY=VALUE (a placeholder name, '=', then its value).",
                ctx=ctx,
                param=param,
            )
        if key in values:
            raise click.BadParameter(f"the key {key!r} is given twice.", ctx=ctx, param=param)
        values[key] = value
    return values


def _redirected_label(redirected_by: str | None) -> str:
    if redirected_by == "stage":
        return "yes (the stage guard: not in DM_NOTIFY_ALLOWED_RECIPIENTS)"
    if redirected_by == "domain":
        return "yes (DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS)"
    return "no"


def _template_label(template: str, template_id: str) -> str:
    return template_id if template == template_id else f"{template} ({template_id})"


def _json_option(function: _F) -> _F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document instead of text."
    )(function)


def _echo_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True))


def _status_document(n: NotificationStatus) -> dict[str, Any]:
    return {
        "id": n.id,
        "reference": n.reference,
        "status": n.status,
        "template_id": n.template_id,
        "template_version": n.template_version,
        "created_at": n.created_at,
        "sent_at": n.sent_at,
        "completed_at": n.completed_at,
    }


# -- send -------------------------------------------------------------------------------------


@click.command(
    "send",
    epilog="""\b
Examples:
  flask dmmail send buyer@example.gov.uk reset_password url=https://www.example.gov.uk/r/abc
  flask dmmail send buyer@example.gov.uk welcome name=Ada framework="G-Cloud 15" \\
      --reference welcome-run-7 --no-resend --json
  flask dmmail send buyer@example.gov.uk welcome "name=$TYPED_NAME" --sanitise name
""",
)
@click.argument("to")
@click.argument("template")
@click.argument("personalisation", nargs=-1, metavar="[KEY=VALUE]...", callback=_personalisation)
@click.option("--reference", help="Notify reference (default: derived from the email).")
@click.option(
    "--reply-to-id",
    metavar="NAME|UUID",
    help="A reply-to name from DM_NOTIFY_REPLY_TO_IDS, or a reply-to address id from Notify.",
)
@click.option(
    "--no-resend",
    is_flag=True,
    help="Skip the email if Notify already has it (same reference, address and template), "
    "so a re-run sends nothing twice.",
)
@click.option(
    "--sanitise",
    "sanitise",
    multiple=True,
    metavar="KEY",
    help="Have Notify strip URLs and markdown from this personalisation value (a value a "
    "user typed). Repeat for several keys.",
)
@_json_option
@with_appcontext
def send_command(
    to: str,
    template: str,
    personalisation: dict[str, str],
    reference: str | None,
    reply_to_id: str | None,
    no_resend: bool,
    sanitise: tuple[str, ...],
    as_json: bool,
) -> None:
    """Send one email to TO with TEMPLATE (a DM_NOTIFY_TEMPLATES name or a UUID).

    Prints the notification id, reference, template and whether the address was
    redirected; never the address or the personalisation.
    """
    mailer = _mailer()
    with _mail_errors():
        sent = mailer.send(
            to,
            template,
            personalisation,
            reference=reference,
            reply_to_id=reply_to_id,
            allow_resend=not no_resend,
            sanitise_content_for=list(sanitise) or None,
        )
        if sent is None:
            skipped = mailer.prepare(to, template, personalisation, reference=reference)
    if sent is None:
        if as_json:
            _echo_json(
                {
                    "skipped": True,
                    "reference": skipped.reference,
                    "template_id": skipped.template_id,
                }
            )
        else:
            click.echo(f"skipped: reference {skipped.reference} has already been sent")
        return
    if as_json:
        _echo_json(
            {
                "skipped": False,
                "id": sent.id,
                "reference": sent.reference,
                "redirected": sent.redirected,
                "redirected_by": sent.redirected_by,
                "template_id": sent.template_id,
                "template_version": sent.template_version,
            }
        )
        return
    click.echo(f"id: {sent.id}")
    click.echo(f"reference: {sent.reference}")
    click.echo(f"redirected: {_redirected_label(sent.redirected_by)}")
    click.echo(
        f"template: {_template_label(template, sent.template_id)} version {sent.template_version}"
    )


# -- preview ----------------------------------------------------------------------------------


@click.command(
    "preview",
    epilog="""\b
Examples:
  flask dmmail preview welcome name=Ada framework="G-Cloud 15"
  flask dmmail preview welcome name=Ada framework="G-Cloud 15" --show-body
""",
)
@click.argument("template")
@click.argument("personalisation", nargs=-1, metavar="[KEY=VALUE]...", callback=_personalisation)
@click.option(
    "--show-body",
    is_flag=True,
    help="Also print the filled subject and body. They hold the personalisation you typed: "
    "keep them out of CI logs.",
)
@_json_option
@with_appcontext
def preview_command(
    template: str, personalisation: dict[str, str], show_body: bool, as_json: bool
) -> None:
    """Check that TEMPLATE fills with the personalisation, through Notify's preview.

    By default prints the template, version, the placeholder names given and the lengths
    of the filled subject and body, not their text (it holds the values); --show-body
    prints it. A missing placeholder is an error (exit 1) that names it.
    """
    mailer = _mailer()
    with _mail_errors():
        preview = mailer.preview(template, personalisation)
    subject = preview.subject or ""
    if as_json:
        document: dict[str, Any] = {
            "template_id": preview.id,
            "version": preview.version,
            "personalisation_keys": sorted(personalisation),
            "subject_length": len(subject),
            "body_length": len(preview.body),
        }
        if show_body:
            document.update(subject=subject, body=preview.body)
        _echo_json(document)
        return
    click.echo(f"template: {_template_label(template, preview.id)} version {preview.version}")
    click.echo(f"personalisation: {', '.join(sorted(personalisation)) or '(none)'}")
    if show_body:
        click.echo(f"subject: {subject}")
        click.echo("")
        click.echo(preview.body)
    else:
        click.echo(
            f"subject: {plural(len(subject), 'character')}, "
            f"body: {plural(len(preview.body), 'character')}"
        )
        click.echo("(add --show-body to print them)")


# -- status -----------------------------------------------------------------------------------


@click.command(
    "status",
    epilog="""\b
Examples:
  flask dmmail status 740e5834-3a29-46b4-9a6f-16142fde533a
  flask dmmail status --reference welcome-run-7 --json
""",
)
@click.argument("notification_id", required=False, metavar="[NOTIFICATION_ID]")
@click.option("--reference", help="Every notification with this reference instead.")
@_json_option
@with_appcontext
def status_command(notification_id: str | None, reference: str | None, as_json: bool) -> None:
    """The status of one notification by id, or of those with --reference (newest first).

    Prints id, status, reference, template and times; never the recipient. With
    --reference, emails queued with send_later come first when Notify does not have them
    yet: queued, sending, retrying, or failed for good (kept for inspection), with the error.
    """
    if (notification_id is None) == (reference is None):
        raise click.UsageError("Give a NOTIFICATION_ID or --reference (one of them).")
    mailer = _mailer()
    queued: list[Any] = []
    with _mail_errors():
        if notification_id is not None:
            found = [mailer.get_notification(notification_id)]
        else:
            assert reference is not None
            queued = mailer.queued(reference)  # send_later's emails (none without a queue)
            found = list(mailer.notifications(reference=reference))
    from .queue_status import merge, queued_document, queued_lines

    alone, tasks = merge(queued, found)
    if not found and not alone:
        raise click.ClickException(
            "No notification with that reference (Notify keeps them for 7 days, and lists "
            "only those sent with this key's type)."
        )
    if as_json:
        documents = [queued_document(q) for q in alone]
        for n in found:
            document = _status_document(n)
            if n.id in tasks:
                document["task_id"] = tasks[n.id]
            documents.append(document)
        _echo_json(documents[0] if notification_id is not None else documents)
        return
    for position, q in enumerate(alone):
        if position:
            click.echo("")
        queued_lines(q)
    for position, n in enumerate(found, start=len(alone)):
        if position:
            click.echo("")
        click.echo(f"id: {n.id}")
        click.echo(f"status: {n.status}")
        if n.id in tasks:
            click.echo(f"task id: {tasks[n.id]} (queued with send_later)")
        click.echo(f"reference: {n.reference or '-'}")
        click.echo(f"template: {n.template_id} version {n.template_version}")
        click.echo(f"created at: {n.created_at or '-'}")
        click.echo(f"sent at: {n.sent_at or '-'}")
        click.echo(f"completed at: {n.completed_at or '-'}")


# -- outbox -----------------------------------------------------------------------------------


@click.command(
    "outbox",
    epilog="""\b
Examples:
  flask dmmail outbox --limit 20
  flask dmmail outbox --status failed --json
""",
)
@click.option(
    "--status",
    type=click.Choice(STATUS_FILTERS),
    help="Only this status ('failed' means any failure).",
)
@click.option("--reference", help="Only this reference.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most this many.",
)
@_json_option
@with_appcontext
def outbox_command(status: str | None, reference: str | None, limit: int, as_json: bool) -> None:
    """The emails sent with this app's key type, newest first (Notify keeps 7 days).

    One line each: created at, id, status, reference. No recipients.
    """
    mailer = _mailer()
    with _mail_errors():
        found = list(
            itertools.islice(mailer.notifications(reference=reference, status=status), limit)
        )
    if as_json:
        _echo_json([_status_document(n) for n in found])
        return
    if not found:
        click.echo("(no notifications)")
        return
    for n in found:
        click.echo(f"{n.created_at or '-'}  {n.id}  {n.status:<17}  {n.reference or '-'}")


# -- sandbox ----------------------------------------------------------------------------------


@click.command(
    "sandbox",
    epilog="""\b
Examples:
  flask dmmail sandbox
  flask dmmail sandbox --port 0 --seed example_app/sandbox_seed.json
  flask dmmail sandbox --callback-url http://127.0.0.1:5000/_dmmail/callbacks/notify
""",
)
@click.option("--port", type=int, default=6011, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--seed",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON or YAML seed file (default: DM_NOTIFY_SANDBOX_TEMPLATES when it is a path).",
)
@click.option(
    "--callback-url",
    metavar="URL",
    help="POST delivery receipts here, with the app's DM_NOTIFY_CALLBACK_TOKEN.",
)
@click.option(
    "--auto-templates",
    is_flag=True,
    help="An unknown template id makes a stand-in template instead of failing.",
)
@with_appcontext
def sandbox_command(
    port: int, host: str, seed: str | None, callback_url: str | None, auto_templates: bool
) -> None:
    """Run the standalone Notify (and Mailchimp) sandbox until Ctrl-C.

    The same as ``python -m flask_dmmail.sandbox``: it prints ``base url:``, ``test key:``,
    ``team key:`` and ``live key:`` lines (keys that open only this sandbox).
    """
    from ..sandbox.__main__ import main

    settings = _mailer().settings
    if seed is None and isinstance(settings.sandbox_seed, str):
        seed = settings.sandbox_seed
    argv = ["--port", str(port), "--host", host]
    if auto_templates:
        argv.append("--auto-templates")
    if seed is not None:
        argv += ["--seed", seed]
    token_set = False
    if callback_url is not None:
        argv += ["--callback-url", callback_url]
        if not os.environ.get("DM_NOTIFY_CALLBACK_TOKEN") and settings.callback_token:
            os.environ["DM_NOTIFY_CALLBACK_TOKEN"] = settings.callback_token
            token_set = True
    try:
        code = main(argv)
    finally:
        if token_set:
            os.environ.pop("DM_NOTIFY_CALLBACK_TOKEN", None)
    if code:
        raise click.exceptions.Exit(code)


def register(group: click.Group) -> None:
    """Add the Notify commands to ``flask dmmail``."""
    for command in (send_command, preview_command, status_command, outbox_command):
        group.add_command(command)
    group.add_command(sandbox_command)
