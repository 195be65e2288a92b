"""What every part of :class:`~flask_dmmail.mailchimp.Audiences` shares:
:class:`AudiencesBase` holds the settings (on top of the
:class:`~flask_dmmail.mailchimp.transport.Transport`), the stage guard that turns an audience
argument into a list id (:meth:`~flask_dmmail.mailchimp.Audiences.list_id`), the listing of
the audiences this app may use, and the logging and ``mailchimp_failed`` signal of a failed
operation.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .. import signals
from ..errors import MailchimpError, UnknownAudienceError, UnlistedAudienceError
from ..references import AddressHasher
from .results import AudienceRef
from .transport import PAGE_SIZE, Transport, scrub

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger("flask_dmmail")

_HEX_LIST_ID = re.compile(r"^[0-9a-f]{10}$")


class AudiencesBase(Transport):
    """The settings, the stage guard and the failure reporting that the parts of
    :class:`~flask_dmmail.mailchimp.Audiences` (subscribing, members, campaigns) build on.

    Its parameters are those of :class:`~flask_dmmail.mailchimp.Audiences`.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        audiences: Mapping[str, str] | None = None,
        hasher: AddressHasher | None = None,
        app: Flask | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        production: bool = False,
    ) -> None:
        super().__init__(
            api_key=api_key, base_url=base_url, timeout=timeout, retries=retries, backoff=backoff
        )
        #: DM_MAILCHIMP_AUDIENCES: audience name -> list id (read-only).
        self.audiences: Mapping[str, str] = MappingProxyType(dict(audiences or {}))
        self._listed = frozenset(self.audiences.values())
        #: Hashes addresses for logs and signals (``to_hash``): the Mailer's, for an app's.
        self.hasher = hasher if hasher is not None else AddressHasher(b"flask-dmmail mailchimp")
        #: The app whose signals this sends (None: the Audiences object is the sender).
        self.app = app
        #: True on the production stage: any audience of the account may be used. Elsewhere
        #: only those in ``audiences`` (DM_MAILCHIMP_AUDIENCES), see
        #: :meth:`~flask_dmmail.mailchimp.Audiences.list_id`.
        self.production = production

    @contextmanager
    def _reporting(
        self, operation: str, list_id: str | None = None, to_hash: str | None = None
    ) -> Iterator[None]:
        """Log and signal a MailchimpError leaving the block (then let it go on)."""
        try:
            yield
        except MailchimpError as error:
            logger.error(
                "Mailchimp %s failed: %s",
                operation,
                error.message,
                extra={
                    "operation": operation,
                    "list_id": list_id,
                    "to_hash": to_hash,
                    "error": type(error).__name__,
                    "status": error.status,
                },
            )
            signals.mailchimp_failed.send(
                self._sender(), error=error, operation=operation, audience=list_id, to_hash=to_hash
            )
            raise

    def _sender(self) -> Any:
        return self.app if self.app is not None else self

    def list_id(self, audience: object) -> str:
        """The list id of ``audience``: a DM_MAILCHIMP_AUDIENCES name, or a list id (one the
        config lists, or 10 hex digits). Raises UnknownAudienceError otherwise.

        Every method that names an audience goes through here, so this is the stage guard:
        outside production (DM_ENVIRONMENT) a list id that DM_MAILCHIMP_AUDIENCES does not
        list raises UnlistedAudienceError, before any request. Preview, staging, development
        and tests (the embedded sandbox too) can then never read, write, mail or delete the
        members of production's audiences, even with a key of the same account."""
        if isinstance(audience, AudienceRef):
            list_id = audience.id
        elif not isinstance(audience, str) or not audience.strip():
            raise UnknownAudienceError(
                "The audience must be a name from DM_MAILCHIMP_AUDIENCES or a Mailchimp list id."
            )
        else:
            name = audience.strip()
            if name in self.audiences:
                return self.audiences[name]
            if not (name in self._listed or _HEX_LIST_ID.match(name)):
                known = ", ".join(sorted(self.audiences)) or "(none configured)"
                raise UnknownAudienceError(
                    f"{scrub(name)!r} is neither an audience name in DM_MAILCHIMP_AUDIENCES "
                    f"({known}) nor a Mailchimp list id (10 hex digits, as in the audience's "
                    "settings)."
                )
            list_id = name
        if not self.production and list_id not in self._listed:
            shown = list_id if _HEX_LIST_ID.match(list_id) else "given"
            raise UnlistedAudienceError(
                f"The audience {shown} is not in this environment's DM_MAILCHIMP_AUDIENCES, and "
                "outside production (DM_ENVIRONMENT = 'production') only those may be used, so "
                "that no other stage can touch production's audiences. Use an audience name "
                "from the config, or add this stage's own audience to DM_MAILCHIMP_AUDIENCES."
            )
        return list_id

    def may_use(self, list_id: str) -> bool:
        """True when this app may use the audience ``list_id``: any audience on production,
        else only those in DM_MAILCHIMP_AUDIENCES."""
        return self.production or list_id in self._listed

    def check_may_create_audience(self) -> None:
        """Raise UnlistedAudienceError outside production, where no audience is created."""
        if not self.production:
            raise UnlistedAudienceError(
                "Audiences are only created on production (DM_ENVIRONMENT = 'production'). "
                "Elsewhere the new audience would not be in DM_MAILCHIMP_AUDIENCES, so nothing "
                "here could use it, and production could later find it by name and take it for "
                "its own. Create it on production, then add its list id to the "
                "DM_MAILCHIMP_AUDIENCES of each stage that should use it."
            )

    def name_of(self, list_id: str) -> str | None:
        """The DM_MAILCHIMP_AUDIENCES name of a list id, if it has one."""
        for name, value in self.audiences.items():
            if value == list_id:
                return name
        return None

    def _hash(self, address: str) -> str:
        return self.hasher.hash_address(address)

    def _lists(self, **query: Any) -> list[AudienceRef]:
        def fetch(client: Any, offset: int) -> Any:
            return client.lists.get_all_lists(
                fields=["lists.id", "lists.name", "total_items"],
                count=PAGE_SIZE,
                offset=offset,
                **query,
            )

        known = [v for v in query.values() if isinstance(v, str)]
        found = (
            AudienceRef(str(x.get("id")), str(x.get("name", "")))
            for x in self._paged("all_audiences", "lists", fetch, known=known)
        )
        return [ref for ref in found if self.may_use(ref.id)]
