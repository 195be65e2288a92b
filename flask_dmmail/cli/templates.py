"""``flask dmmail templates pull | check``: the service's email templates, for sandbox mode
and for deploy pipelines.

Both read the service named by the app's ``DM_NOTIFY_KEY`` (a test key can read templates)
and ``DM_NOTIFY_BASE_URL``, in sandbox mode too: they never read the embedded sandbox.
Output names templates and their ids, never a key.

Exit codes: 0 done (every template passed), 1 refused or a template failed, 75 transient
(Notify unavailable, rate limit: try again later).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from ..errors import DMMailError
from ..templates_file import DEFAULT_FILENAME, default_path

if TYPE_CHECKING:
    from ..service_templates import TemplatesReader

__all__ = ["register"]

EXIT_REFUSED = 1
EXIT_TRANSIENT = 75


def register(group: click.Group) -> None:
    """Add the ``templates`` group to the ``dmmail`` group."""
    group.add_command(templates_cli)


templates_cli = AppGroup(
    "templates",
    help="The Notify service's email templates: pull them into a file beside the app (sandbox "
    "mode then uses them), or check DM_NOTIFY_TEMPLATES against the service (for deploy "
    "pipelines). Both use DM_NOTIFY_KEY and DM_NOTIFY_BASE_URL; a Notify test key can read "
    "templates.",
)


class TemplatesCommandError(click.ClickException):
    """A DMMailError, shown as ``Error: <message>`` on stderr without a traceback."""

    exit_code = EXIT_REFUSED


class TransientTemplatesCommandError(TemplatesCommandError):
    """Notify was unavailable or rate limited: worth trying again later."""

    exit_code = EXIT_TRANSIENT


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except DMMailError as error:
        cls = TransientTemplatesCommandError if error.transient else TemplatesCommandError
        raise cls(error.message) from None


def _reader() -> TemplatesReader:
    """A reader of the service of the app's key: Notify itself, never the embedded sandbox."""
    from ..extension import DMMail
    from ..service_templates import TemplatesReader

    settings = DMMail.mailer().settings
    if settings.notify_key is None:
        raise TemplatesCommandError(
            "This command reads the templates of your Notify service, so it needs the "
            "service's key, and this app has none (it runs in sandbox mode). Set DM_NOTIFY_KEY "
            "in the environment to a Notify test key (GOV.UK Notify: API integration > API "
            "keys > Create an API key > 'Test'; a test key can read templates and sends "
            "nothing), then run the command again."
        )
    return TemplatesReader(settings.notify_key, settings.notify_base_url, settings.timeout)


@templates_cli.command(
    "pull",
    epilog="""\b
Examples:
  DM_NOTIFY_KEY=<test key> flask dmmail templates pull
  flask dmmail templates pull --output app/notify_templates.json
""",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Where to write the templates (default: {DEFAULT_FILENAME} in the app's root "
    "folder, where sandbox mode looks for it).",
)
@with_appcontext
def pull(output: Path | None) -> None:
    """Write the service's email templates (id, name, subject, body, version) to a file.

    Commit the file beside the app: in sandbox mode (development and tests) the embedded
    sandbox then has the real templates, so a missing placeholder fails on your machine as
    it would on Notify. The file is sorted JSON that diffs well; it holds no key and no
    personal data. Archived templates are left out, as Notify's list leaves them out.
    """
    from ..extension import DMMail
    from ..templates_file import write_templates_file

    target = output if output is not None else default_path(current_app)
    with _errors():
        found = _reader().email_templates()
        written = write_templates_file(target, [t.pulled() for t in found])
    count = len(found)
    click.echo(f"Wrote {count} email template{'' if count == 1 else 's'} to {written}")
    pulled_ids = {t.id for t in found}
    configured = DMMail.mailer().settings.templates
    missing = sorted(name for name, tid in configured.items() if tid not in pulled_ids)
    if missing:
        click.echo(
            f"Not among them (stand-ins in sandbox mode; `flask dmmail templates check` says "
            f"why): {', '.join(missing)}"
        )


@templates_cli.command(
    "check",
    epilog="""\b
Examples:
  flask dmmail templates check
  flask dmmail templates check --file app/notify_templates.json
  flask dmmail templates check --no-file
""",
)
@click.option(
    "--file",
    "file_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The pulled file to compare subjects and bodies with (default: {DEFAULT_FILENAME} "
    "in the app's root folder, when it exists).",
)
@click.option(
    "--no-file",
    is_flag=True,
    help="Do not compare with a pulled file, even when there is one.",
)
@with_appcontext
def check(file_path: Path | None, no_file: bool) -> None:
    """Check every template of DM_NOTIFY_TEMPLATES against the service: it exists, is an
    email template, is not archived and, given a pulled file, its subject and body match the
    file's. One line per template; exit status 0 when all pass, 1 otherwise."""
    from ..extension import DMMail
    from ..service_templates import check_templates
    from ..templates_file import read_templates_file

    if file_path is not None and no_file:
        raise click.UsageError("Give --file or --no-file, not both.")
    templates = DMMail.mailer().settings.templates
    if not templates:
        click.echo("DM_NOTIFY_TEMPLATES names no templates: nothing to check.")
        return
    path = file_path
    if path is None and not no_file and default_path(current_app).is_file():
        path = default_path(current_app)
    with _errors():
        pulled = {t.id: t for t in read_templates_file(path)} if path is not None else None
        results = check_templates(_reader(), templates, pulled, path.name if path else "")
    for result in results:
        click.echo(result.line())
    failed = sum(not r.ok for r in results)
    if failed:
        click.echo(
            f"{failed} of {len(results)} template{'' if len(results) == 1 else 's'} failed "
            "the check.",
            err=True,
        )
        click.get_current_context().exit(EXIT_REFUSED)
