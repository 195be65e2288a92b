"""``flask dmmail bulk-send``: one template to a CSV file or a Mailchimp audience, at
Notify's rate limit, resumable through a journal. Nothing it prints holds an address or a
personalisation value."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

import click
from flask.cli import with_appcontext

from ..bulk import (
    AudienceSource,
    BulkProgress,
    BulkReport,
    CsvSource,
    RecipientSource,
    load_personalisation,
    send_bulk,
)
from ..errors import BulkAbortedError, BulkInterruptedError, DMMailError
from .wording import one_line_per_failure, plural

__all__ = ["register"]

#: Exit status of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def register(group: click.Group) -> None:
    """Add ``bulk-send`` to the ``dmmail`` group."""
    group.add_command(bulk_send)


class ProgressLine:
    """A one-line progress bar with rate and ETA, redrawn in place on ``stream``."""

    def __init__(self, stream: IO[str], enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self._drawn = 0.0
        self._stopping = False
        self._visible = False

    def __call__(self, progress: BulkProgress) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if progress.stopping and not self._stopping:
            self._stopping = True
            self.clear()
            click.echo(
                f"Stopping: waiting for {plural(progress.in_flight, 'send')} under way "
                "(Ctrl-C again to abandon them; they are checked in Notify on resume).",
                file=self.stream,
            )
        if now - self._drawn < 0.2 and progress.done < progress.total:
            return
        self._drawn = now
        share = progress.done / progress.total if progress.total else 1.0
        bar = "#" * int(share * 30)
        eta = "--:--" if progress.eta is None else _duration(progress.eta)
        line = (
            f"[{bar:<30}] {progress.done}/{progress.total} {share:4.0%}  "
            f"sent {progress.sent}  skipped {progress.skipped}  failed {progress.failed}  "
            f"{progress.rate:5.1f}/s  ETA {eta}"
        )
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self._visible = True

    def clear(self) -> None:
        """End the bar's line so other output starts on a fresh one."""
        if self._visible:
            self.stream.write("\n")
            self.stream.flush()
            self._visible = False


class StopOnSignals:
    """Ctrl-C or SIGTERM during a run: the first stops it cleanly (sets ``stop``); another,
    once the run is stopping, abandons the sends under way (sets ``abandon``: they stay
    in-flight and are looked up on resume). The handlers are installed for the run only,
    on the main thread, and the ones before them are put back after."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.abandon = threading.Event()
        self._stopping = False  # the run said so (stopped by a signal or by an error)
        self._previous: dict[int, Any] = {}

    def watch(self, progress: Callable[[BulkProgress], None]) -> Callable[[BulkProgress], None]:
        """``progress``, also noting when the run says it is stopping."""

        def watched(report: BulkProgress) -> None:
            if report.stopping:
                self._stopping = True
            progress(report)

        return watched

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set() or self._stopping:
            self.abandon.set()
        self.stop.set()

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _template_label(template: str, template_id: str) -> str:
    """The template as the user gave it, with its id when they gave a name."""
    return template_id if template.lower() == template_id else f"{template} ({template_id})"


def _summary(
    report: BulkReport, failures: Path | None, template: str, via: str = "threads"
) -> None:
    title = "Dry run (nothing sent)" if report.dry_run else "Bulk send"
    label = _template_label(template, report.template_id)
    click.echo(f"{title}: template {label}, {plural(report.total, 'recipient')}")
    if report.dry_run:
        click.echo(f"  would send:               {report.unsent}")
    else:
        click.echo(f"  sent:                     {report.sent} ({report.redirected} redirected)")
    click.echo(
        f"  skipped as already sent:  {report.already_sent}"
        + (f" ({report.found_in_notify} found in Notify)" if report.found_in_notify else "")
    )
    if report.duplicates:
        click.echo(f"  skipped as duplicate rows: {report.duplicates}")
    click.echo(f"  failed:                   {report.failed}")
    for error_class, count in report.failed_by_class.items():
        click.echo(f"    {error_class}: {count}")
    if not report.dry_run:
        if report.unsent or report.in_doubt:
            click.echo(f"  not sent yet:             {report.unsent + report.in_doubt}")
        click.echo(f"  rate limited (429s):      {report.rate_limited}")
        workers = (
            plural(report.concurrency, "chunk") + " on Celery workers"
            if via == "celery"
            else plural(report.concurrency, "thread")
        )
        click.echo(
            f"  {report.elapsed:.1f} s, {report.achieved_rate:.1f} emails/s "
            f"(limit {report.rate:.0f}/min, {workers})"
        )
    if failures is not None and not report.failures:
        click.echo(f"No failures: {failures} not written.")
    elif failures is not None:
        try:
            report.write_failures(failures)
        except OSError as error:
            # Checked before the run, so rare (a full disk, say): list them here instead.
            click.echo(f"Cannot write {failures}: {error.strerror}. The failures by row:")
            for failure in report.failures:
                click.echo(f"  row {failure.row}: {failure.error_class}")
        else:
            click.echo(f"Failures by row written to {failures}")
    elif report.failures:
        for failure in report.failures[:10]:
            click.echo(f"  row {failure.row}: {failure.error_class}")
        if report.failed > 10:
            click.echo(f"  ... and {report.failed - 10} more: use --failures FILE for all")


def _check_failures_path(failures: Path, others: dict[str, Path | None]) -> None:
    """Refuse a --failures path the summary could not write, before anything is sent:
    the run's list of failed rows must not be lost, nor an input overwritten."""
    for option, path in others.items():
        if path is not None and (
            path.resolve() == failures.resolve()
            or (path.exists() and failures.exists() and path.samefile(failures))
        ):
            raise click.BadParameter(
                f"{failures} is the {option} file; give the failures a file of their own.",
                param_hint="'--failures'",
            )
    if failures.is_dir():
        raise click.BadParameter(f"{failures} is a directory.", param_hint="'--failures'")
    directory = failures.parent
    if not directory.is_dir():
        raise click.BadParameter(
            f"the directory {directory} does not exist; create it or give another path.",
            param_hint="'--failures'",
        )
    try:
        if failures.exists():
            failures.open("a", encoding="utf-8").close()  # writable; its content is kept
        else:
            failures.open("x", encoding="utf-8").close()
            failures.unlink()
    except OSError as error:
        raise click.BadParameter(
            f"cannot write {failures}: {error.strerror}.", param_hint="'--failures'"
        ) from None


def _command_line() -> str:
    """This command line, to run again to resume."""
    ctx = click.get_current_context()
    prog = ctx.find_root().info_name or "flask"
    args = sys.argv[1:]
    if "bulk-send" not in args:  # not started from a shell (a test runner, say)
        args = [*ctx.command_path.split()[1:], *_params(ctx.params)]
    return shlex.join([*prog.split(), *args])


def _params(params: dict[str, Any]) -> list[str]:
    out = [str(params["template"])]
    for name, value in params.items():
        if name == "template" or value is None or value is False or value == ():
            continue
        option = "--" + name.replace("_path", "").replace("_", "-")
        if value is True:
            out.append(option)
        elif isinstance(value, tuple):
            for item in value:
                out += [option, str(item)]
        elif isinstance(value, datetime):
            out += [option, value.isoformat()]
        else:
            out += [option, str(value)]
    return out


@click.command("bulk-send")
@click.argument("template")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV file (UTF-8): an 'email' or 'email address' column and one per placeholder.",
)
@click.option(
    "--audience",
    metavar="NAME",
    help="Send to the subscribed members of this Mailchimp audience (DM_MAILCHIMP_AUDIENCES).",
)
@click.option(
    "--since",
    type=click.DateTime(),
    help="With --audience: only members who subscribed (or changed) since this date.",
)
@click.option(
    "--personalisation",
    "personalisation_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON file of placeholder values for every recipient (CSV columns win).",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="SQLite file recording each recipient's state (with --via celery: the run's name "
    "in Redis); give the same one to resume.",
)
@click.option(
    "--via",
    type=click.Choice(["threads", "celery"]),
    default="threads",
    show_default=True,
    help="threads: this process sends. celery: Celery workers send the emails in chunks, "
    "and this command shows their progress (DM_MAIL_CELERY_BROKER_URL or the app's Celery app).",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 10_000),
    help="With --via celery: emails per Celery task (default 100).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=1),
    help="Requests per minute (default DM_NOTIFY_BULK_RATE, 2700).",
)
@click.option(
    "--burst",
    type=click.IntRange(min=1),
    help="Size of the key's token bucket (default Notify's for the rate).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    help="Sender threads (default: enough for the rate at the measured latency).",
)
@click.option(
    "--dry-run", is_flag=True, help="Check every recipient and the journal; send nothing."
)
@click.option(
    "--failures",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write failed rows here as CSV: row, error_class, message (no addresses).",
)
@click.option(
    "--sanitise",
    multiple=True,
    metavar="KEY",
    help="Have Notify strip URLs and markdown from this column's values (text people typed). "
    "Repeat for several keys.",
)
@click.option(
    "--check-notify",
    is_flag=True,
    help="Look every email the journal does not know as sent up by reference in Notify "
    "before sending it: to finish a send whose journal was lost or damaged, with a new "
    "journal, without sending twice what Notify has (it keeps emails 7 days).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr (default: when stderr is a terminal).",
)
@with_appcontext
def bulk_send(
    template: str,
    csv_path: Path | None,
    audience: str | None,
    since: datetime | None,
    personalisation_path: Path | None,
    journal: Path,
    via: str,
    chunk_size: int | None,
    rate: float | None,
    burst: int | None,
    concurrency: int | None,
    dry_run: bool,
    failures: Path | None,
    sanitise: tuple[str, ...],
    check_notify: bool,
    progress: bool | None,
) -> None:
    """Send TEMPLATE (a name from DM_NOTIFY_TEMPLATES, or a template id) to every
    recipient of a CSV file or a Mailchimp audience, each exactly once.

    Emails go at Notify's rate limit from several threads. Each recipient's state is kept
    in the --journal file: if the run stops (Ctrl-C, a crash, a lost connection), run the
    same command again and it carries on, sending nothing twice. A recipient that fails is
    reported by row number and does not stop the run; the exit status is 1 if any failed,
    130 if the run was interrupted.

    With --via celery, Celery workers (on any machines) send the emails in chunks under
    the journal named by --journal, kept in Redis; this command shows one progress bar
    and one summary for all of them, and Ctrl-C stops every worker's part of the run.
    """
    from ..extension import DMMail

    if (csv_path is None) == (audience is None):
        raise click.UsageError("Give exactly one of --csv FILE or --audience NAME.")
    if since is not None and audience is None:
        raise click.UsageError("--since goes with --audience.")
    if chunk_size is not None and via != "celery":
        raise click.UsageError("--chunk-size goes with --via celery.")
    if concurrency is not None and via == "celery":
        raise click.UsageError("--concurrency is for --via threads: Celery's workers send.")
    if failures is not None:
        _check_failures_path(
            failures,
            {"--csv": csv_path, "--journal": journal, "--personalisation": personalisation_path},
        )
    mailer = DMMail.mailer()
    try:
        values = load_personalisation(personalisation_path) if personalisation_path else None
        source: RecipientSource
        if csv_path is not None:
            source = CsvSource(csv_path, values)
        else:
            assert audience is not None
            source = AudienceSource(audience, since=since, personalisation=values)
        stream = sys.stderr
        show = stream.isatty() if progress is None else progress
        bar = ProgressLine(stream, show and not dry_run)
        try:
            with StopOnSignals() as interrupt, one_line_per_failure():
                report = send_bulk(
                    mailer,
                    template,
                    source,
                    journal=journal,
                    rate=rate,
                    burst=burst,
                    concurrency=concurrency,
                    dry_run=dry_run,
                    progress=interrupt.watch(bar),
                    sanitise_content_for=list(sanitise) or None,
                    check_notify=check_notify,
                    stop=interrupt.stop,
                    abandon=interrupt.abandon,
                    via=via,
                    chunk_size=chunk_size,
                )
        finally:
            bar.clear()
    except (BulkInterruptedError, BulkAbortedError) as error:
        if error.report is not None:
            _summary(error.report, failures, template, via)
        click.echo(f"\n{error.message}", err=True)
        click.echo("To resume, run the same command again:", err=True)
        click.echo(f"  {_command_line()}", err=True)
        click.get_current_context().exit(
            EXIT_INTERRUPTED if isinstance(error, BulkInterruptedError) else 1
        )
    except DMMailError as error:
        raise click.ClickException(error.message) from None
    _summary(report, failures, template, via)
    if report.failures:
        click.get_current_context().exit(1)
