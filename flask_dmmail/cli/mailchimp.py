"""``flask dmmail mailchimp ...``: subscribe, export, create-audience, send-campaign, forget.

Every command exits non-zero on any failure, prints errors without addresses or keys, shows
progress on stderr for long work, and has ``--dry-run`` where it would change something.
Only ``export`` writes addresses: that is its purpose.

Outside production (``DM_ENVIRONMENT``) every command works only on the audiences in
``DM_MAILCHIMP_AUDIENCES`` (another list id is refused before any network call), and
``create-audience`` creates nothing: preview and staging cannot touch the real lists.
Files that are not UTF-8 text, and an ``--output`` that cannot be written, are refused with a
one-line error before anything is done.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TextIO

import click
from flask.cli import AppGroup

from ..csvsafe import safe_row
from ..errors import DMMailError
from ..mailchimp import Audiences, SubscribeOutcome
from ..validation import check_email_address
from .wording import one_line_per_failure, plural

__all__ = ["mailchimp_cli", "register"]

_HEADERS = frozenset({"email", "email_address", "email address", "emailaddress"})


def register(group: click.Group) -> None:
    """Add the ``mailchimp`` group to the ``dmmail`` group."""
    group.add_command(mailchimp_cli)


class _MailchimpGroup(AppGroup):
    """Runs each command with :func:`~flask_dmmail.cli.wording.one_line_per_failure`: a
    failed call prints the command's one line, not the retries' log lines as well."""

    def invoke(self, ctx: click.Context) -> Any:
        with one_line_per_failure():
            return super().invoke(ctx)


mailchimp_cli = _MailchimpGroup(
    "mailchimp",
    help="Manage this app's Mailchimp audiences (DM_MAILCHIMP_API_KEY, DM_MAILCHIMP_AUDIENCES; "
    "the embedded sandbox in sandbox mode). AUDIENCE is a name from DM_MAILCHIMP_AUDIENCES or "
    "a list id. Output never shows an address, except the CSV of 'export'.",
)


def _audiences() -> Audiences:
    from ..extension import DMMail

    try:
        return DMMail.mailer().mailchimp
    except DMMailError as error:
        raise click.ClickException(error.message) from None


def _fail(error: DMMailError) -> click.ClickException:
    return click.ClickException(error.message)


def _stderr() -> TextIO:
    return sys.stderr


def _read_addresses(arguments: Sequence[str], files: Sequence[IO[str]]) -> list[str]:
    """Addresses from the arguments and from files: one per line, or a CSV whose first
    column (or ``email``/``email_address`` column) holds them; a header line is skipped.
    A file that is not UTF-8 text is a usage error (exit 2) that names the file only."""
    addresses = [a.strip() for a in arguments if a.strip()]
    for handle in files:
        try:
            _read_file(handle, addresses)
        except (UnicodeDecodeError, csv.Error) as error:
            what = "UTF-8 text" if isinstance(error, UnicodeDecodeError) else "a readable CSV"
            raise click.BadParameter(
                f"{_name_of(handle)} is not {what}. Save it as UTF-8 text (in a spreadsheet: "
                "CSV UTF-8), one address a line or a CSV with an email column.",
                param_hint="'--file'",
            ) from None
    return addresses


def _read_file(handle: IO[str], addresses: list[str]) -> None:
    reader = csv.reader(handle)
    column = 0
    for number, row in enumerate(reader):
        if not row or not any(cell.strip() for cell in row):
            continue
        lowered = [cell.strip().lower() for cell in row]
        if number == 0 and any(cell in _HEADERS for cell in lowered):
            column = next(i for i, cell in enumerate(lowered) if cell in _HEADERS)
            continue
        if column < len(row) and row[column].strip():
            addresses.append(row[column].strip())


def _name_of(handle: IO[str]) -> str:
    name = getattr(handle, "name", None)
    if not isinstance(name, str) or name.startswith("<"):
        return "stdin"
    return repr(click.format_filename(name, shorten=True))


def _valid(address: str) -> bool:
    try:
        check_email_address(address)
    except DMMailError:
        return False
    return True


def _describe(audiences: Audiences, list_id: str) -> str:
    name = audiences.name_of(list_id)
    return f"{name} ({list_id})" if name else list_id


# UTF-8 whatever the locale; "-sig" drops the byte order mark Excel's "CSV UTF-8" writes.
_FILE = click.File("r", encoding="utf-8-sig")
_FILE_HELP = (
    "Read addresses from FILE ('-' for stdin): one a line, or a CSV with an email column. "
    "May be given more than once."
)


@mailchimp_cli.command("subscribe")
@click.argument("audience")
@click.argument("addresses", nargs=-1)
@click.option("--file", "files", type=_FILE, multiple=True, help=_FILE_HELP)
@click.option("--dry-run", is_flag=True, help="Check the addresses and the audience only.")
def subscribe_command(
    audience: str, addresses: tuple[str, ...], files: tuple[IO[str], ...], dry_run: bool
) -> None:
    """Subscribe ADDRESSES (and those in --file) to AUDIENCE with Mailchimp's batch
    endpoint. Nobody's status is overwritten: people who unsubscribed stay unsubscribed and
    are counted. Prints counts per outcome; exits 1 when any address was refused."""
    audiences = _audiences()
    wanted = _read_addresses(addresses, files)
    if not wanted:
        raise click.UsageError("Give at least one address, as an argument or with --file.")
    try:
        list_id = audiences.list_id(audience)
        if dry_run:
            ref = audiences.audience(list_id)
            unique = {a.lower(): a for a in wanted}
            invalid = sum(1 for a in unique.values() if not _valid(a))
            click.echo(
                f"dry run: would subscribe {plural(len(unique) - invalid, 'address', 'addresses')}"
                f" to {ref.name} ({ref.id}); "
                f"{plural(invalid, 'address is', 'addresses are')} not valid."
            )
            if invalid:
                sys.exit(1)
            return
        with click.progressbar(length=len(wanted), label="Subscribing", file=_stderr()) as bar:
            result = audiences.subscribe_many(list_id, wanted, progress=bar.update)
    except DMMailError as error:
        raise _fail(error) from None
    click.echo(f"audience: {_describe(audiences, list_id)}")
    for outcome in SubscribeOutcome:
        click.echo(f"{outcome.value}: {result.counts[outcome]}")
    if not result.ok:
        click.echo(f"{plural(result.failed, 'address was', 'addresses were')} refused.", err=True)
        sys.exit(1)


_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived")


@mailchimp_cli.command("export")
@click.argument("audience")
@click.option(
    "--status",
    type=click.Choice([*_STATUSES, "all"]),
    default="subscribed",
    show_default=True,
    help="Members with this status ('all': every status but archived).",
)
@click.option(
    "--since",
    metavar="TIME",
    help="Only members changed at or after TIME (ISO 8601, e.g. 2024-05-01 or "
    "2024-05-01T09:00:00+00:00).",
)
@click.option(
    "--field",
    "extra_fields",
    multiple=True,
    metavar="NAME",
    help="Another member field as a column, e.g. merge_fields.FNAME (repeatable).",
)
@click.option(
    "--output",
    "-o",
    default="-",
    show_default=True,
    metavar="FILE",
    help="Write the CSV to FILE ('-': stdout). A file is written only when the export is complete.",
)
def export_command(
    audience: str, status: str, since: str | None, extra_fields: tuple[str, ...], output: str
) -> None:
    """Export AUDIENCE's members as CSV: email_address, status, timestamp_opt,
    last_changed, then any --field. The CSV holds email addresses: that is its purpose,
    so keep the file safe and delete it when done. Each member appears exactly once even if
    the audience changes during the export. Progress goes to stderr."""
    if output != "-":
        _check_output(Path(output))
    audiences = _audiences()
    columns = ["email_address", "status", "timestamp_opt", "last_changed", *extra_fields]
    wanted_status = None if status == "all" else status
    try:
        list_id = audiences.list_id(audience)
        walk = audiences.members(list_id, status=wanted_status, since=since, fields=columns)
        total = audiences.member_count(list_id, wanted_status)
        if output == "-":
            written = _write_csv(sys.stdout, columns, walk, total)
        else:
            written = _write_file(Path(output), columns, walk, total)
    except DMMailError as error:
        raise _fail(error) from None
    where = "stdout" if output == "-" else output
    click.echo(
        f"exported {plural(written, 'member')} of {_describe(audiences, list_id)} to {where}",
        err=True,
    )


def _check_output(path: Path) -> None:
    """A usage error (exit 2) unless the export can be written to ``path``: checked before
    the export starts, so no run is lost to a bad path."""
    problem = None
    folder = path.resolve().parent
    if path.is_dir():
        problem = "it is a folder; give a file name, such as suppliers.csv"
    elif not folder.is_dir():
        problem = "its folder does not exist; create it first or choose another file"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = "its folder cannot be written to; choose another file"
    elif path.exists() and not path.is_file():
        problem = "it is not a regular file; choose another file"
    if problem is not None:
        raise click.BadParameter(f"{problem}.", param_hint="'--output'")


def _write_file(path: Path, columns: list[str], walk: Iterator[Any], total: int) -> int:
    directory = path.resolve().parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            written = _write_csv(handle, columns, walk, total)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return written


def _write_csv(handle: IO[str], columns: list[str], walk: Iterator[Any], total: int) -> int:
    """Write the members as CSV; values a spreadsheet would run as formulas are made text
    (:func:`flask_dmmail.csvsafe.safe_cell`)."""
    writer = csv.writer(handle)
    writer.writerow(columns)
    written = 0
    with click.progressbar(length=max(total, 1), label="Exporting", file=_stderr()) as bar:
        for member in walk:
            writer.writerow(safe_row("" if (v := member.get(c)) is None else v for c in columns))
            written += 1
            bar.update(1)
    return written


@mailchimp_cli.command("create-audience")
@click.argument("source")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Show what would be created; create nothing.")
def create_audience_command(source: str, name: str, dry_run: bool) -> None:
    """Create an audience NAME like SOURCE (its contact, permission reminder and campaign
    defaults), e.g. for a new DOS iteration, and print its list id. If an audience called
    NAME exists already, its id is printed and nothing is created. Production only
    (DM_ENVIRONMENT): elsewhere it is refused, --dry-run too."""
    audiences = _audiences()
    try:
        source_id = audiences.list_id(source)
        audiences.check_may_create_audience()
        ref = audiences.audience(source_id)
        existing = audiences.find_audience(name)
        if dry_run:
            if existing is not None:
                click.echo(f"dry run: an audience called {name!r} exists already: {existing}")
            else:
                click.echo(f"dry run: would create {name!r} like {ref.name} ({ref.id})")
            return
        list_id = audiences.create_audience_like(ref.id, name)
    except DMMailError as error:
        raise _fail(error) from None
    if existing is not None:
        click.echo(f"exists already: {list_id}", err=True)
    click.echo(list_id)


@mailchimp_cli.command("send-campaign")
@click.argument("audience")
@click.option("--title", required=True, help="The campaign's title; one campaign per title.")
@click.option("--subject", required=True, help="The subject line.")
@click.option(
    "--html-file",
    type=click.File("r", encoding="utf-8"),
    required=True,
    help="The campaign's HTML ('-' for stdin); it needs the *|UNSUB|* merge tag.",
)
@click.option("--from-name", help="Default: the audience's campaign defaults.")
@click.option("--reply-to", help="Default: the audience's campaign defaults.")
@click.option("--dry-run", is_flag=True, help="Check everything, send nothing.")
def send_campaign_command(
    audience: str,
    title: str,
    subject: str,
    html_file: IO[str],
    from_name: str | None,
    reply_to: str | None,
    dry_run: bool,
) -> None:
    """Send a campaign with the HTML of --html-file to AUDIENCE's subscribers.

    A campaign with the same --title already sent to AUDIENCE is not sent again (so a
    re-run is safe). Outside production (DM_ENVIRONMENT) only audiences listed in this
    environment's DM_MAILCHIMP_AUDIENCES may get campaigns.
    """
    try:
        html = html_file.read()
    except UnicodeDecodeError:
        html = "\0"
    if "\0" in html:  # not UTF-8, or a binary file that happens to decode
        raise click.BadParameter(
            f"{_name_of(html_file)} is not UTF-8 text. Give the campaign's HTML, saved as UTF-8.",
            param_hint="'--html-file'",
        )
    audiences = _audiences()
    try:
        list_id = audiences.list_id(audience)
        if dry_run:
            found = audiences.find_campaign(list_id, title)
            if found is not None and found.status not in ("save", "paused"):
                click.echo(
                    f"dry run: already sent as campaign {found.campaign_id} ({found.status})"
                )
                return
            count = audiences.member_count(list_id, "subscribed")
            click.echo(
                f"dry run: would send {title!r} to {plural(count, 'subscriber')} of "
                f"{_describe(audiences, list_id)}"
            )
            if "*|UNSUB|*" not in html:
                click.echo(
                    "the HTML has no *|UNSUB|* merge tag: Mailchimp will refuse it", err=True
                )
                sys.exit(1)
            return
        result = audiences.send_campaign(
            list_id,
            title=title,
            subject=subject,
            html=html,
            from_name=from_name,
            reply_to=reply_to,
        )
    except DMMailError as error:
        raise _fail(error) from None
    if result.already_sent:
        click.echo(
            f"already sent: campaign {result.campaign_id} ({result.status}); nothing new sent"
        )
    else:
        click.echo(
            f"sent: campaign {result.campaign_id} ({result.status}) to "
            f"{plural(result.recipient_count, 'recipient')} of {_describe(audiences, list_id)}"
        )


def _would_forget(found: Sequence[str]) -> str:
    if not found:
        return "nothing to delete: not a member of any audience"
    return f"would delete from {plural(len(found), 'audience')}: {', '.join(found)}"


def _forgotten(deleted: Sequence[str], not_found: Sequence[str]) -> str:
    if not deleted:
        where = plural(len(not_found), "audience") if not_found else "any audience"
        return f"nothing to delete: not a member of {where}"
    line = f"deleted from {plural(len(deleted), 'audience')}: {', '.join(deleted)}"
    if not_found:
        line += f"; not a member of {plural(len(not_found), 'other audience')}"
    return line


@mailchimp_cli.command("forget")
@click.argument("addresses", nargs=-1)
@click.option("--file", "files", type=_FILE, multiple=True, help=_FILE_HELP)
@click.option("--audience", help="Only this audience (default: every audience they are in).")
@click.option("--dry-run", is_flag=True, help="List the audiences only; delete nothing.")
def forget_command(
    addresses: tuple[str, ...], files: tuple[IO[str], ...], audience: str | None, dry_run: bool
) -> None:
    """Permanently delete ADDRESSES (and those in --file) from Mailchimp, for data retention.
    They can then only come back through a signup form. Addresses are reported by their
    position (#1, #2, ...), never shown. Exits 1 if any could not be deleted."""
    audiences = _audiences()
    wanted = _read_addresses(addresses, files)
    if not wanted:
        raise click.UsageError("Give at least one address, as an argument or with --file.")
    failures = 0
    try:
        explicit = audiences.list_id(audience) if audience is not None else None
    except DMMailError as error:
        raise _fail(error) from None
    with click.progressbar(length=len(wanted), label="Forgetting", file=_stderr()) as bar:
        for number, address in enumerate(wanted, start=1):
            try:
                if dry_run:
                    found = (
                        [explicit] if explicit else [a.id for a in audiences.audiences_for(address)]
                    )
                    click.echo(f"#{number}: dry run: {_would_forget(found)}")
                else:
                    result = audiences.forget(address, explicit)
                    click.echo(f"#{number}: {_forgotten(result.deleted, result.not_found)}")
            except DMMailError as error:
                failures += 1
                click.echo(f"#{number}: failed: {error.message}", err=True)
            bar.update(1)
    if failures:
        click.echo(f"{failures} of {len(wanted)} could not be forgotten.", err=True)
        sys.exit(1)
