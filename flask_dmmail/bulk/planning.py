"""Planning a bulk run, before anything is sent: every recipient read and its email
prepared (checked, with its reference and redirect), the fingerprint that ties a journal
to its input, and row numbers for the recipients of a source that has none (an audience).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import DMMailError, MissingPersonalisationError, RecipientsError
from ..notify import PreparedEmail
from .adapter import MailerAdapter
from .journal import Entry
from .sources import RecipientSource

__all__ = ["Planned", "Planner"]


@dataclass
class Planned:
    """One recipient, planned: its email, or the error that fails it. ``row`` is None
    until :meth:`Planner.number` gives it one."""

    row: int | None
    email: PreparedEmail | None
    error: DMMailError | None
    address_hash: str | None


class Planner:
    """Reads and prepares the recipients of one run.

    :param adapter: the run's way to the Mailer.
    :param template_id: the template every email uses.
    :param source: where the recipients come from.
    :param sanitise: personalisation keys whose values Notify strips of URLs and markdown.
    :param stop: once set, reading the recipients ends (the caller stopped the run).
    """

    def __init__(
        self,
        adapter: MailerAdapter,
        template_id: str,
        source: RecipientSource,
        sanitise: Sequence[str] = (),
        stop: threading.Event | None = None,
    ) -> None:
        self.adapter = adapter
        self.template_id = template_id
        self.source = source
        self.sanitise = sanitise
        self.stop = stop

    def plan(self) -> list[Planned] | None:
        """Every recipient, in order, prepared or failed; None if ``stop`` was set first."""
        planned: list[Planned] = []
        hasher = self.adapter.hasher
        for recipient in self.adapter.recipients(self.source):
            if self.stop is not None and self.stop.is_set():
                return None
            to_hash = hasher.hash_address(recipient.to) if isinstance(recipient.to, str) else None
            if recipient.problem is not None:
                planned.append(Planned(recipient.row, None, recipient.problem, to_hash))
                continue
            try:
                email = self.adapter.prepare(recipient, self.template_id, self.sanitise)
            except DMMailError as error:
                planned.append(Planned(recipient.row, None, error, to_hash))
            else:
                planned.append(Planned(recipient.row, email, None, email.to_hash))
        return planned

    def check_placeholders(self, planned: list[Planned]) -> None:
        """Ask Notify's preview of the template whether the input has every placeholder: a
        stand-in value for each personalisation key of any recipient (no real value leaves
        the machine). Raises :class:`~flask_dmmail.errors.RecipientsError` naming the
        placeholders no recipient has (a CSV's missing columns): every email would fail."""
        keys = {key for p in planned if p.email for key in p.email.personalisation}
        if not any(p.email for p in planned):
            return  # nothing would be sent
        try:
            self.adapter.preview(self.template_id, dict.fromkeys(sorted(keys), "x"))
        except MissingPersonalisationError as error:
            missing = ", ".join(error.missing) or "(Notify did not name them)"
            raise RecipientsError(
                f"The template needs personalisation the recipients do not have: {missing}. "
                "Add a column for each (CSV) or a value (--personalisation), then run again; "
                "nothing was sent."
            ) from None

    def fingerprint(self, planned: list[Planned]) -> str:
        """What the journal checks a resumed run's input against: the source's identity
        (a non-positional source), or a digest of every row's reference."""
        identity = self.source.identity(self.adapter.hasher, self.template_id)
        if identity is not None:
            return "audience:" + identity
        digest = hashlib.sha256()
        for p in planned:
            item = p.email.reference if p.email else f"invalid:{type(p.error).__name__}"
            digest.update(f"{p.row}:{item}:{p.address_hash}\n".encode())
        return "rows:" + digest.hexdigest()

    @staticmethod
    def number(planned: list[Planned], entries: list[Entry]) -> None:
        """Give rows to a non-positional source's recipients: the journal's row for a
        reference (or, for an invalid one, address hash) it knows, else the next free one."""
        by_reference = {e.reference: e.row for e in entries if e.reference}
        by_hash = {e.address_hash: e.row for e in entries if not e.reference and e.address_hash}
        next_row = max((e.row for e in entries), default=0) + 1
        for p in planned:
            known = (
                by_reference.get(p.email.reference)
                if p.email
                else by_hash.get(p.address_hash)
                if p.address_hash
                else None
            )
            if known is None:
                known, next_row = next_row, next_row + 1
            p.row = known
