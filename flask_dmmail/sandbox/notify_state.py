"""The Notify service the sandbox serves: its keys, settings, templates, limits and outbox.

:class:`NotifyState` is one Notify service with a test, a team and a live key. It holds the
service's settings (trial mode, delivery delay, team members and guest list), its templates
and reply-to addresses, and composes :class:`~flask_dmmail.sandbox.limits.Limits` (rate and
daily limits) and :class:`~flask_dmmail.sandbox.lifecycle.Notifications` (the stored
notifications and their statuses). Everything lives behind ``lock``; nothing is written to
disk. The root :class:`~flask_dmmail.sandbox.state.SandboxState` holds it as ``.notify``.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .lifecycle import Notifications
from .limits import Limits
from .models import (
    DEFAULT_TEAM_MEMBER,
    ApiKey,
    KeyType,
    Notification,
    ReplyToAddress,
    SandboxKeys,
    Template,
    TemplateVersion,
    utcnow,
)
from .seeding import (
    NOTIFY_SEED_KEYS,
    Seed,
    check_seed_keys,
    load_seed,
    parse_notify_seed,
    parse_template,
    snapshot_seed,
)

if TYPE_CHECKING:
    from .callbacks import CallbackSender

__all__ = ["NotifyState"]

_KEY_NAMESPACE = uuid.UUID("5a1d6b0c-3f7e-4c1b-9a52-6d4e2b7f0c11")


class NotifyState:
    """One Notify service with a test, a team and a live key, its templates and outbox.

    :param seed: the Notify part of a seed (see :mod:`~flask_dmmail.sandbox.seeding`): a
        mapping, or a path to a JSON or YAML file, shaped like ``{"templates": [{"id",
        "name", "subject", "body", "type"}], "reply_to_addresses": [{"id",
        "email_address"}], "team_members": [...], "guest_list": [...]}``.
    :param delivery_delay: seconds from ``created`` to the final status.
    :param rate_limit: requests per 60 seconds per key type.
    :param burst: the token bucket's size (None: Notify's own sizing).
    :param daily_limit: emails per day.
    :param restricted: the service is in trial mode.
    :param auto_templates: an unknown template id gets a stand-in template instead of
        "Template not found".
    :param service_id: a fixed service id, for the same keys on every start (None: random).
    :param service_name: the service's name (its emails come from its dotted lower case).
    :param contact_link: the service's contact link (None: files cannot be sent).
    :param callback_url: POST a delivery receipt here whenever a notification reaches a
        final status, as Notify does (see :mod:`flask_dmmail.sandbox.callbacks`).
    :param callback_token: the bearer token of those receipts.
    """

    def __init__(
        self,
        seed: Seed | None = None,
        *,
        delivery_delay: float = 0.0,
        rate_limit: int = 3000,
        burst: int | None = None,
        daily_limit: int = 250_000,
        restricted: bool = False,
        auto_templates: bool = False,
        service_id: str | None = None,
        service_name: str = "Sandbox service",
        contact_link: str | None = "https://www.example.gov.uk/contact",
        callback_url: str | None = None,
        callback_token: str | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.service_id = str(uuid.UUID(service_id)) if service_id else str(uuid.uuid4())
        self.service_name = service_name
        self.email_sender_local_part = service_name.lower().replace(" ", ".")
        self.contact_link = contact_link
        self.auto_templates = auto_templates
        fixed = service_id is not None
        kinds: tuple[tuple[str, KeyType], ...] = (
            ("test", "test"),
            ("team", "team"),
            ("live", "normal"),
        )
        self._api_keys: list[ApiKey] = [
            ApiKey(f"sandbox_{label}_key", key_type, self._secret(key_type, fixed))
            for label, key_type in kinds
        ]
        self.keys = SandboxKeys(
            test=self._api_keys[0].full_key(self.service_id),
            team=self._api_keys[1].full_key(self.service_id),
            live=self._api_keys[2].full_key(self.service_id),
        )
        self._initial: dict[str, Any] = {
            "delivery_delay": delivery_delay,
            "restricted": restricted,
            "seed": snapshot_seed(seed),
        }
        #: The rate and daily limits.
        self.limits = Limits(self.lock, rate_limit=rate_limit, burst=burst, daily_limit=daily_limit)
        #: The stored notifications, their statuses and the status listeners.
        self.notifications = Notifications(self.lock)
        self.reset()
        self.callbacks: CallbackSender | None = None
        if callback_url is not None:
            from .callbacks import CallbackSender

            self.callbacks = CallbackSender(callback_url, callback_token)
            self.notifications.add_status_listener(self.callbacks)

    def _secret(self, key_type: str, fixed: bool) -> str:
        if fixed:
            return str(uuid.uuid5(_KEY_NAMESPACE, f"{self.service_id}:{key_type}"))
        return str(uuid.uuid4())

    # ----------------------------------------------------------------- control

    def reset(self) -> None:
        """Back to the state at construction: initial seed and limits, no notifications,
        no revoked keys. The keys stay the same."""
        with self.lock:
            self.delivery_delay: float = self._initial["delivery_delay"]
            self.restricted: bool = self._initial["restricted"]
            self.limits.reset()
            for key in self._api_keys:
                key.revoked = False
            self.templates: dict[str, Template] = {}
            self.reply_to_addresses: dict[str, ReplyToAddress] = {}
            self.team_members: list[str] = [DEFAULT_TEAM_MEMBER]
            self.guest_list: list[str] = []
            self.notifications.reset()
            self.seed(self._initial["seed"])

    def seed(self, seed: Seed) -> list[str]:
        """Add or update templates, reply-to addresses, team members and guest list.

        A template whose id exists gets a new version when its content changed. The whole
        seed is checked before anything changes. Returns the ids of the templates in the seed.

        :param seed: the Notify part of a seed: a mapping, or a JSON or YAML file's path.
        """
        data = load_seed(seed)
        check_seed_keys(data, NOTIFY_SEED_KEYS)
        parsed = parse_notify_seed(data)
        with self.lock:
            for tid, values, archived in parsed.templates:
                self._save_template(tid, values, archived)
            for reply in parsed.reply_to_addresses:
                self.reply_to_addresses[reply.id] = reply
            self.team_members.extend(a for a in parsed.team_members if a not in self.team_members)
            self.guest_list.extend(a for a in parsed.guest_list if a not in self.guest_list)
        return [tid for tid, _, _ in parsed.templates]

    def set_service(
        self, *, restricted: bool | None = None, delivery_delay: float | None = None
    ) -> None:
        """Put the service in or out of trial mode, or change the delivery delay."""
        with self.lock:
            if restricted is not None:
                self.restricted = restricted
            if delivery_delay is not None:
                if delivery_delay < 0:
                    raise ValueError("delivery_delay must not be negative")
                self.delivery_delay = delivery_delay

    def revoke_key(self, key_type: str, revoked: bool = True) -> None:
        """Revoke (or restore) the key of ``key_type``: "test", "team", "live" or "normal"."""
        wanted = "normal" if key_type == "live" else key_type
        with self.lock:
            for key in self._api_keys:
                if key.key_type == wanted:
                    key.revoked = revoked
                    return
        raise ValueError(f"unknown key type {key_type!r}")

    def close(self) -> None:
        """Stop the status ticker and the delivery receipts' thread."""
        self.notifications.close()
        if self.callbacks is not None:
            self.callbacks.close()

    # ------------------------------------------------------------- templates

    def _save_template(self, tid: str, values: dict[str, Any], archived: bool | None) -> Template:
        existing = self.templates.get(tid)
        if existing is not None:
            cur = existing.current
            if (cur.name, cur.type, cur.subject, cur.body) != (
                values["name"],
                values["type"],
                values["subject"],
                values["body"],
            ):
                existing.versions.append(
                    TemplateVersion(
                        version=cur.version + 1,
                        created_at=utcnow(),
                        created_by=self.team_members[0],
                        **values,
                    )
                )
            if archived is not None:
                existing.archived = archived
            return existing
        template = Template(
            id=tid,
            versions=[
                TemplateVersion(
                    version=1, created_at=utcnow(), created_by=self.team_members[0], **values
                )
            ],
            archived=bool(archived),
        )
        self.templates[tid] = template
        return template

    def add_template(
        self,
        *,
        name: str,
        subject: str | None,
        body: str,
        type: str = "email",
        id: str | None = None,
        archived: bool | None = None,
    ) -> Template:
        """Add a template (or a new version of one) and return it."""
        seed: dict[str, Any] = {"name": name, "subject": subject, "body": body, "type": type}
        if id is not None:
            seed["id"] = id
        if archived is not None:
            seed["archived"] = archived
        tid, values, arch = parse_template(seed)
        with self.lock:
            return self._save_template(tid, values, arch)

    def unknown_template(self, template_id: str, personalisation_keys: Iterable[str]) -> Template:
        """Create the stand-in template used by ``auto_templates`` for an unknown id."""
        keys = list(personalisation_keys)
        body = (
            "\n".join(f"{k}: (({k}))" for k in keys)
            if keys
            else "This email was sent without personalisation."
        )
        with self.lock:
            existing = self.templates.get(template_id)
            if existing is not None:
                return existing
            return self._save_template(
                template_id,
                {
                    "name": "Unknown template",
                    "type": "email",
                    "subject": f"Template {template_id} is not in the sandbox",
                    "body": body,
                },
                False,
            )

    def archive_template(self, template_id: str, archived: bool = True) -> None:
        """Mark a template archived (deleted) or not."""
        with self.lock:
            self.templates[template_id].archived = archived

    def template(self, template_id: str) -> Template | None:
        """The template with this id (archived or not), or None."""
        with self.lock:
            return self.templates.get(template_id)

    # --------------------------------------------------------------- reading

    def api_keys(self) -> list[ApiKey]:
        """The service's keys, in the order Notify tries them."""
        with self.lock:
            return [dataclasses.replace(k) for k in self._api_keys]

    def to_dict(self) -> dict[str, Any]:
        """The service settings as JSON (keys included: they only open this sandbox)."""
        with self.lock:
            return {
                "service_id": self.service_id,
                "service_name": self.service_name,
                "keys": dataclasses.asdict(self.keys),
                "revoked": [k.key_type for k in self._api_keys if k.revoked],
                "restricted": self.restricted,
                "delivery_delay": self.delivery_delay,
                "rate_limit": self.limits.rate_limit,
                "burst": self.limits.bucket_size,
                "daily_limit": self.limits.daily_limit,
                "auto_templates": self.auto_templates,
                "team_members": list(self.team_members),
                "guest_list": list(self.guest_list),
                "reply_to_addresses": [
                    dataclasses.asdict(r) for r in self.reply_to_addresses.values()
                ],
            }

    # ------------------------------------------------------------- sending

    def recipient_allowed(self, key_type: str, email_address: str) -> bool:
        """Notify's rule: may this key send to this address?"""
        if key_type == "test":
            return True
        with self.lock:
            if key_type == "normal" and not self.restricted:
                return True
            wanted = email_address.strip().lower()
            return any(a.strip().lower() == wanted for a in (*self.team_members, *self.guest_list))

    def store(self, notification: Notification) -> None:
        """Keep a new notification, count it and schedule its status changes."""
        with self.lock:
            self.notifications.store(notification, self.delivery_delay)
            self.limits.count_send(notification.key_type, notification.type)

    def __repr__(self) -> str:
        return f"<NotifyState service_id={self.service_id} notifications={len(self.notifications)}>"
