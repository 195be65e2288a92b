"""Where the recipients of a bulk send come from: :class:`Recipient` (one of them), the
:class:`RecipientSource` base, and the three sources: pairs in memory
(:class:`IterableSource`), a CSV file (:class:`CsvSource`) and a Mailchimp audience
(:class:`AudienceSource`)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DMMailError, InvalidPersonalisationError, RecipientsError
from ..validation import check_personalisation

if TYPE_CHECKING:
    from ..extension import Mailer
    from ..references import AddressHasher

__all__ = [
    "AudienceSource",
    "CsvSource",
    "IterableSource",
    "Recipient",
    "RecipientSource",
]


@dataclass(frozen=True)
class Recipient:
    """One recipient of a bulk send. ``row`` is its row number (None: the journal numbers
    it); ``problem`` is an input error found while reading it (the row then fails)."""

    row: int | None
    to: object = field(repr=False)
    personalisation: object = field(repr=False, default=None)
    problem: DMMailError | None = None


class RecipientSource:
    """Where the recipients of a bulk send come from.

    A positional source (a list, a CSV) must give the same rows in the same order when a
    run is resumed; the journal checks that with a fingerprint of every row's reference.
    A non-positional source (a Mailchimp audience) may change between runs: the journal
    is keyed by reference, and a resumed run sends to newcomers and skips whoever has had
    the email.
    """

    positional = True
    description = "recipients"

    def recipients(self, mailer: Mailer) -> Iterator[Recipient]:
        """Every recipient, in order.

        :param mailer: the :class:`~flask_dmmail.extension.Mailer` of the run (for its
            Mailchimp audiences, say).
        """
        raise NotImplementedError

    def identity(self, hasher: AddressHasher, template_id: str) -> str | None:
        """A stable fingerprint of a non-positional source (None for positional ones).

        :param hasher: the app's keyed hasher, so the fingerprint holds no personal data.
        :param template_id: the template of the run.
        """
        return None


class IterableSource(RecipientSource):
    """``(address, personalisation)`` pairs (or bare addresses), numbered from row 1.

    :param items: the pairs or addresses.
    """

    description = "recipients"

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = items

    def recipients(self, mailer: Mailer) -> Iterator[Recipient]:
        for row, item in enumerate(self._items, start=1):
            if isinstance(item, tuple | list) and len(item) == 2:
                yield Recipient(row, item[0], item[1])
            elif isinstance(item, str):
                yield Recipient(row, item, None)
            else:
                yield Recipient(
                    row,
                    None,
                    problem=InvalidPersonalisationError(
                        "Each recipient must be an (address, personalisation) pair or an "
                        f"address, not {type(item).__name__}."
                    ),
                )


_EMAIL_COLUMNS = {"email", "email address", "emailaddress"}


def _column_key(name: str) -> str:
    return " ".join(name.strip().lower().replace("_", " ").replace("-", " ").split())


class CsvSource(RecipientSource):
    """A UTF-8 CSV file: an ``email`` (or ``email address``) column, whatever the case, and
    one column per placeholder. Row numbers are the file's, as a spreadsheet shows them:
    the header is row 1.

    :param path: the CSV file.
    :param personalisation: values for every row (its columns win).
    """

    description = "CSV file"

    def __init__(
        self, path: str | PathLike[str], personalisation: Mapping[str, Any] | None = None
    ) -> None:
        self.path = Path(path)
        self.personalisation = dict(personalisation or {})

    def recipients(self, mailer: Mailer) -> Iterator[Recipient]:
        try:
            handle = self.path.open(encoding="utf-8-sig", newline="")
        except OSError as error:
            raise RecipientsError(
                f"Cannot open the CSV file {self.path.name!r}: {error.strerror}."
            ) from None
        with handle:
            try:
                yield from self._rows(csv.reader(handle))
            except UnicodeDecodeError:
                raise RecipientsError(
                    f"The CSV file {self.path.name!r} is not UTF-8: save it as 'CSV UTF-8'."
                ) from None
            except csv.Error as error:
                raise RecipientsError(
                    f"The CSV file {self.path.name!r} is not valid CSV: {error}."
                ) from None

    def _rows(self, reader: Iterator[list[str]]) -> Iterator[Recipient]:
        header = next(reader, None)
        if not header:
            raise RecipientsError(f"The CSV file {self.path.name!r} is empty: it needs a header.")
        keys = [_column_key(name) for name in header]
        email_columns = [i for i, key in enumerate(keys) if key in _EMAIL_COLUMNS]
        if len(email_columns) != 1:
            raise RecipientsError(
                f"The CSV file {self.path.name!r} needs exactly one column named 'email' or "
                f"'email address' (found {len(email_columns)})."
            )
        named = [k for k in keys if k]
        if len(set(named)) != len(named):
            raise RecipientsError(
                f"The CSV file {self.path.name!r} has two columns with the same name."
            )
        email_at = email_columns[0]
        columns = [(i, name.strip()) for i, name in enumerate(header) if i != email_at and keys[i]]
        for row, cells in enumerate(reader, start=2):
            if any("\x00" in cell for cell in cells):
                raise RecipientsError(
                    f"Row {row} of the CSV file {self.path.name!r} holds a NUL character, as "
                    "a binary file or UTF-16 text does: save it as 'CSV UTF-8'."
                )
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header) and any(c.strip() for c in cells[len(header) :]):
                yield Recipient(
                    row,
                    None,
                    problem=InvalidPersonalisationError(
                        f"This row has {len(cells)} cells but the header has {len(header)} "
                        "columns. Check for unquoted commas."
                    ),
                )
                continue
            if len(cells) < len(header):
                yield Recipient(
                    row,
                    None,
                    problem=InvalidPersonalisationError(
                        f"This row has {len(cells)} cells but the header has {len(header)} "
                        "columns. Fill in every column."
                    ),
                )
                continue
            values = dict(self.personalisation)
            values.update((name, cells[i]) for i, name in columns)
            yield Recipient(row, cells[email_at], values)


class AudienceSource(RecipientSource):
    """The members of a Mailchimp audience (a name from ``DM_MAILCHIMP_AUDIENCES``) with a
    ``status`` (default subscribed), optionally only those changed ``since`` a time (when
    they subscribed, for subscribed members), through ``Mailer.mailchimp.members``.

    :param audience: a name from ``DM_MAILCHIMP_AUDIENCES``.
    :param status: the members' status.
    :param since: only members changed since this date or ISO time.
    :param personalisation: values for every member (checked now).
    """

    positional = False
    description = "Mailchimp audience"

    def __init__(
        self,
        audience: str,
        *,
        status: str = "subscribed",
        since: date | str | None = None,
        personalisation: Mapping[str, Any] | None = None,
    ) -> None:
        self.audience = audience
        self.status = status
        self.since = since
        # Checked now: the values go into the source's fingerprint, and into every email.
        self.personalisation = check_personalisation(personalisation)

    def recipients(self, mailer: Mailer) -> Iterator[Recipient]:
        audiences = mailer.mailchimp  # a ConfigurationError without a Mailchimp key
        try:
            members = audiences.members(
                self.audience, status=self.status, since=self.since, fields=()
            )
            for member in members:
                yield Recipient(None, member.email_address, dict(self.personalisation))
        except DMMailError as error:
            raise RecipientsError(
                f"Cannot read the Mailchimp audience {self.audience!r}: {error.message}"
            ) from error

    def identity(self, hasher: AddressHasher, template_id: str) -> str:
        # A keyed digest (a derived reference), so the journal holds no personalisation.
        since = self.since.isoformat() if isinstance(self.since, date) else self.since
        return hasher.reference(
            f"audience:{self.audience}:{self.status}:{since}", template_id, self.personalisation
        )


def as_source(recipients: RecipientSource | Iterable[Any]) -> RecipientSource:
    """The source of ``recipients`` (pairs are an :class:`IterableSource`); a
    RecipientsError for anything else."""
    if isinstance(recipients, RecipientSource):
        return recipients
    if isinstance(recipients, str | bytes | PathLike) or not isinstance(recipients, Iterable):
        raise RecipientsError(
            "recipients must be (address, personalisation) pairs, a CsvSource or an "
            "AudienceSource; for a CSV file pass CsvSource(path)."
        )
    return IterableSource(recipients)
