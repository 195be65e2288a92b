"""The :class:`~flask_dmmail.mailchimp.Audiences` class an app uses for Mailchimp: built from
a Mailer (:meth:`~flask_dmmail.mailchimp.Audiences.from_mailer`), composed of the parts in the
sibling modules, and holding the calls about audiences themselves (ping, look-up, listing,
member counts, creating one like another, webhooks).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_MAILCHIMP_BASE_URL
from ..errors import (
    ConfigurationError,
    InvalidInputError,
    MailchimpProtocolError,
    MailchimpUnavailableError,
)
from .campaigns import CampaignsMixin
from .checks import _check_status, _text
from .members import MembersMixin
from .results import AudienceRef
from .subscribing import SubscribingMixin

if TYPE_CHECKING:
    from ..extension import Mailer

__all__ = ["Audiences"]

logger = logging.getLogger("flask_dmmail")


class Audiences(SubscribingMixin, MembersMixin, CampaignsMixin):
    """Mailchimp audiences and campaigns for one app (``app.extensions["dmmail"].mailchimp``).

    Safe to share between threads. Every method raises
    :class:`~flask_dmmail.errors.InvalidInputError` for bad arguments before any network call,
    and a :class:`~flask_dmmail.errors.MailchimpError` subclass when Mailchimp refuses or
    cannot be reached (after retries, for the transient ones).

    The methods live in parts, a module of ``flask_dmmail/mailchimp/`` each: subscribing
    (``subscribing.py``), reading and forgetting members (``members.py``) and campaigns
    (``campaigns.py``), all over ``AudiencesBase`` (``base.py``: the settings, the stage guard
    :meth:`list_id`, failure reporting) and ``Transport`` (``transport.py``: requests and
    retries). This class adds its construction from a Mailer and the calls about audiences
    themselves.

    :param api_key: the Mailchimp API key (DM_MAILCHIMP_API_KEY, or the sandbox's).
    :param base_url: the API's base URL, such as ``https://us5.api.mailchimp.com/3.0``.
    :param audiences: DM_MAILCHIMP_AUDIENCES, audience names to list ids.
    :param hasher: what hashes addresses for logs and signals (default: a fixed key).
    :param app: the app to send signals as (default: this object).
    :param timeout: the deadline of one request, in seconds (DM_MAILCHIMP_TIMEOUT).
    :param retries: how many times a transient failure is retried (DM_MAILCHIMP_RETRIES).
    :param backoff: the first retry's mean delay in seconds (DM_MAILCHIMP_RETRY_BACKOFF).
    :param production: True on the production stage, where any audience of the account may
        be used; elsewhere only those of ``audiences``.
    """

    @classmethod
    def from_mailer(cls, mailer: Mailer) -> Audiences:
        """The Audiences of a Mailer: its sandbox's Mailchimp in sandbox mode (where every
        audience of DM_MAILCHIMP_AUDIENCES is created under its list id), else Mailchimp
        with DM_MAILCHIMP_API_KEY.

        :param mailer: the app's :class:`~flask_dmmail.extension.Mailer`, whose settings,
            hasher and sandbox it uses.
        """
        settings = mailer.settings
        sandbox = mailer.sandbox
        if sandbox is not None:
            # The sandbox has every audience of DM_MAILCHIMP_AUDIENCES already.
            api_key = sandbox.mailchimp_key
            base_url = f"{sandbox.url}/3.0"
        else:
            if settings.mailchimp_api_key is None:
                raise ConfigurationError(
                    "DM_MAILCHIMP_API_KEY",
                    "is not set, so Mailchimp cannot be used. Create a key in Mailchimp "
                    "(Profile > Extras > API keys) and set DM_MAILCHIMP_API_KEY from the "
                    "environment (for example in a .env file, never committed); the key's "
                    "'-us5'-style ending picks the data centre."
                    + (
                        ""
                        if settings.production
                        else " Or turn the local sandbox on with DM_MAIL_SANDBOX = True."
                    ),
                )
            api_key = settings.mailchimp_api_key
            dc = api_key.rsplit("-", 1)[-1]
            base_url = settings.mailchimp_base_url or DEFAULT_MAILCHIMP_BASE_URL.format(dc=dc)
        return cls(
            api_key=api_key,
            base_url=base_url,
            audiences=settings.audiences,
            hasher=mailer.hasher,
            app=mailer.app,
            timeout=settings.mailchimp_timeout,
            retries=settings.mailchimp_retries,
            backoff=settings.mailchimp_retry_backoff,
            production=settings.production,
        )

    def __repr__(self) -> str:
        return f"<Audiences {self.base_url} audiences={sorted(self.audiences)!r}>"

    def ping(self) -> bool:
        """True when Mailchimp answers with this key (raises MailchimpError otherwise)."""
        with self._reporting("ping"):
            data = self._json("ping", lambda c: c.ping.get())
        return bool(data.get("health_status"))

    def audience(self, audience: object) -> AudienceRef:
        """The id and name of one audience (MailchimpNotFoundError when it does not exist)."""
        list_id = self.list_id(audience)
        with self._reporting("audience", list_id):
            data = self._json(
                "audience", lambda c: c.lists.get_list(list_id, fields=["id", "name"])
            )
        return AudienceRef(str(data.get("id") or list_id), str(data.get("name") or ""))

    def all_audiences(self) -> list[AudienceRef]:
        """Every audience of the account on production; elsewhere only those of
        DM_MAILCHIMP_AUDIENCES that the account has."""
        with self._reporting("all_audiences"):
            return self._lists()

    def find_audience(self, name: str) -> str | None:
        """The list id of the first audience named exactly ``name`` (of
        :meth:`~flask_dmmail.mailchimp.Audiences.all_audiences`: outside production, only the
        listed ones), or None."""
        wanted = _text(name, "The audience name", limit=100)
        for ref in self.all_audiences():
            if ref.name == wanted:
                return ref.id
        return None

    def member_count(self, audience: object, status: str | None = "subscribed") -> int:
        """How many members ``audience`` has with ``status`` (None: all but archived)."""
        list_id = self.list_id(audience)
        query = {"status": _check_status(status)} if status is not None else {}
        with self._reporting("member_count", list_id):
            data = self._json(
                "member_count",
                lambda c: c.lists.get_list_members_info(
                    list_id, fields=["total_items"], count=1, **query
                ),
            )
        return int(data.get("total_items") or 0)

    def create_audience_like(self, source_audience: object, name: str) -> str:
        """Create an audience named ``name`` with the contact, permission reminder, campaign
        defaults and email options of ``source_audience`` (for a new DOS iteration, say);
        return its list id.

        If an audience with exactly that name exists already, its id is returned and nothing
        is created, so a script that failed half-way can simply run again. (The create is
        never retried blindly: an unanswered create is checked by name first.)

        Only on production (DM_ENVIRONMENT): elsewhere it raises UnlistedAudienceError
        before any request (see
        :meth:`~flask_dmmail.mailchimp.Audiences.check_may_create_audience`).
        """
        source = self.list_id(source_audience)
        title = _text(name, "The audience name", limit=100)
        self.check_may_create_audience()
        with self._reporting("create_audience", source):
            existing = self.find_audience(title)
            if existing is not None:
                logger.info(
                    "Mailchimp audience %s already exists; nothing created",
                    existing,
                    extra={"operation": "create_audience", "list_id": existing},
                )
                return existing
            data = self._json(
                "create_audience",
                lambda c: c.lists.get_list(
                    source,
                    fields=[
                        "contact",
                        "permission_reminder",
                        "campaign_defaults",
                        "email_type_option",
                        "use_archive_bar",
                        "double_optin",
                        "marketing_permissions",
                    ],
                ),
            )
            body: dict[str, Any] = {
                "name": title,
                "contact": data.get("contact") or {},
                "permission_reminder": data.get("permission_reminder") or "",
                "campaign_defaults": data.get("campaign_defaults") or {},
                "email_type_option": bool(data.get("email_type_option", False)),
            }
            for key in ("use_archive_bar", "double_optin", "marketing_permissions"):
                if isinstance(data.get(key), bool):
                    body[key] = data[key]
            try:
                created = self._json(
                    "create_audience", lambda c: c.lists.create_list(body), retry=False
                )
            except MailchimpUnavailableError:
                found = self.find_audience(title)  # it may have been created after all
                if found is None:
                    raise
                return found
            list_id = created.get("id")
            if not isinstance(list_id, str) or not list_id:
                raise MailchimpProtocolError("Mailchimp created an audience but sent no id.")
        logger.info(
            "Mailchimp audience %s created like %s",
            list_id,
            source,
            extra={"operation": "create_audience", "list_id": list_id, "source": source},
        )
        return list_id

    def add_webhook(self, audience: object, url: str) -> str:
        """Ask Mailchimp to POST unsubscribe and cleaned events of ``audience`` to ``url``
        (the app's ``/_dmmail/callbacks/mailchimp/<DM_MAILCHIMP_WEBHOOK_TOKEN>``), from
        people and admins but not from this API. Returns the webhook id."""
        list_id = self.list_id(audience)
        target = _text(url, "The webhook URL", limit=2000)
        if not target.startswith(("https://", "http://")):
            raise InvalidInputError("The webhook URL must be an absolute http(s) URL.")
        body = {
            "url": target,
            "events": {
                "subscribe": False,
                "unsubscribe": True,
                "profile": False,
                "cleaned": True,
                "upemail": False,
                "campaign": False,
            },
            "sources": {"user": True, "admin": True, "api": False},
        }
        with self._reporting("add_webhook", list_id):
            data = self._json(
                "add_webhook", lambda c: c.lists.create_list_webhook(list_id, body), retry=False
            )
        return str(data.get("id") or "")
