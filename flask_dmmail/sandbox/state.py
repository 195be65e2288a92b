"""The sandbox's in-memory state: one Notify service, its keys, templates and notifications.

Everything lives behind ``state.lock``. Nothing is written to disk. Every control action
of the ``/_sandbox/`` endpoints is a method here, so in-process users need no HTTP.
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..ratelimit import TokenBucket, notify_bucket_size
from .mailchimp import MailchimpState

if TYPE_CHECKING:
    from .callbacks import CallbackSender

__all__ = [
    "EMAIL_STATUSES",
    "FAILED_STATUSES",
    "NOTIFICATION_STATUSES",
    "SMOKE_TEST_EMAILS",
    "ApiKey",
    "FaultConfig",
    "Notification",
    "ReplyToAddress",
    "SandboxKeys",
    "SandboxState",
    "Template",
    "TemplateVersion",
]

logger = logging.getLogger(__name__)

KeyType = Literal["test", "team", "normal"]

#: Every status the list filter accepts, in Notify's order (``failed`` means all failures).
NOTIFICATION_STATUSES: tuple[str, ...] = (
    "cancelled",
    "created",
    "sending",
    "sent",
    "delivered",
    "pending",
    "failed",
    "technical-failure",
    "temporary-failure",
    "permanent-failure",
    "pending-virus-check",
    "validation-failed",
    "virus-scan-failed",
    "returned-letter",
    "accepted",
    "received",
)
FAILED_STATUSES: tuple[str, ...] = (
    "technical-failure",
    "temporary-failure",
    "permanent-failure",
    "validation-failed",
    "virus-scan-failed",
    "returned-letter",
)
EMAIL_STATUSES: tuple[str, ...] = (
    "created",
    "sending",
    "delivered",
    "permanent-failure",
    "temporary-failure",
    "technical-failure",
)
#: Statuses after which a notification never changes again (``completed_at`` is set).
TERMINAL_STATUSES = frozenset(
    {"delivered", "sent", "cancelled", "returned-letter", "received", *FAILED_STATUSES}
)
SMOKE_TEST_EMAILS = frozenset(
    {
        "simulate-delivered@notifications.service.gov.uk",
        "simulate-delivered-2@notifications.service.gov.uk",
        "simulate-delivered-3@notifications.service.gov.uk",
    }
)
SIMULATED_FINAL_STATUS = {
    "temp-fail@simulator.notify": "temporary-failure",
    "perm-fail@simulator.notify": "permanent-failure",
}
TEMPLATE_TYPES = ("sms", "email", "letter")
DEFAULT_TEAM_MEMBER = "sandbox-user@example.gov.uk"
KEY_TYPE_LABELS: dict[str, str] = {"test": "TEST", "team": "TEAM", "normal": "LIVE"}
_KEY_NAMESPACE = uuid.UUID("5a1d6b0c-3f7e-4c1b-9a52-6d4e2b7f0c11")


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class SandboxKeys:
    """The full API key strings (``name-serviceid-secret``) of the sandbox service."""

    test: str
    team: str
    live: str


@dataclass
class ApiKey:
    """One API key of the service. Revoked keys still match tokens (then answer 403)."""

    name: str
    key_type: KeyType
    secret: str
    revoked: bool = False

    def full_key(self, service_id: str) -> str:
        """The key string a client is configured with."""
        return f"{self.name}-{service_id}-{self.secret}"


@dataclass(frozen=True)
class TemplateVersion:
    """One saved version of a template."""

    version: int
    name: str
    type: str
    subject: str | None
    body: str
    created_at: datetime
    created_by: str


@dataclass
class Template:
    """A template with all its versions; ``versions[-1]`` is the current one."""

    id: str
    versions: list[TemplateVersion]
    archived: bool = False

    @property
    def current(self) -> TemplateVersion:
        """The latest version."""
        return self.versions[-1]

    @property
    def created_at(self) -> datetime:
        """When version 1 was saved."""
        return self.versions[0].created_at

    @property
    def updated_at(self) -> datetime | None:
        """When the latest version was saved, or None if there is only one."""
        return self.versions[-1].created_at if len(self.versions) > 1 else None

    def version(self, number: int) -> TemplateVersion | None:
        """Version ``number``, or None."""
        if 1 <= number <= len(self.versions):
            return self.versions[number - 1]
        return None


@dataclass(frozen=True)
class ReplyToAddress:
    """An email reply-to address of the service."""

    id: str
    email_address: str


@dataclass
class Notification:
    """A stored email notification, as the sandbox keeps it."""

    id: str
    key_type: str
    email_address: str
    template_id: str
    template_version: int
    template_name: str
    subject: str
    body: str
    reference: str | None
    email_reply_to_id: str | None
    one_click_unsubscribe_url: str | None
    personalisation: dict[str, Any]
    files: list[dict[str, Any]]
    status: str
    created_at: datetime
    sent_at: datetime | None = None
    completed_at: datetime | None = None
    type: str = "email"
    from_email: str = ""
    reply_to: str | None = None
    sanitised_content: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> Notification:
        """A copy safe to hand out of the lock."""
        return dataclasses.replace(
            self,
            personalisation=dict(self.personalisation),
            files=[dict(f) for f in self.files],
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (times in ISO 8601)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        return out


@dataclass(frozen=True)
class FaultConfig:
    """What the fault layer does to requests whose path starts with one of ``paths``.

    Each request gets at most one fault: ``error_rate`` of them are answered 500 without
    being processed, ``drop_rate`` are processed (and stored) and then the connection is
    dropped, ``stall_rate`` are processed and then held for ``stall_seconds`` before the
    answer. ``latency`` seconds are added to every matching request.
    """

    latency: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    stall_rate: float = 0.0
    stall_seconds: float = 35.0
    paths: tuple[str, ...] = ("/v2/",)

    @property
    def active(self) -> bool:
        """True when any fault is configured."""
        return bool(self.latency or self.error_rate or self.drop_rate or self.stall_rate)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["paths"] = list(self.paths)
        return out


def _load_seed(seed: Mapping[str, Any] | str | os.PathLike[str]) -> Mapping[str, Any]:
    if isinstance(seed, Mapping):
        return seed
    path = Path(seed)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"seed file {path.name} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"seed file {path.name} must hold a mapping at the top level")
    return data


def _str_list(seed: Mapping[str, Any], name: str) -> list[str]:
    value = seed.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"seed: {name} must be a list of strings")
    return value


def _check_uuid(value: Any, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"seed: {what} must be a UUID") from None


class SandboxState:
    """One Notify service with a test, a team and a live key, its templates and outbox.

    ``seed`` is a mapping, or a path to a JSON or YAML file, shaped like
    ``{"templates": [{"id", "name", "subject", "body", "type"}], "reply_to_addresses":
    [{"id", "email_address"}], "team_members": [...], "guest_list": [...]}``.
    Pass ``service_id`` to get the same keys on every start. With ``callback_url`` (and
    ``callback_token``), a delivery receipt is POSTed there whenever a notification reaches
    a final status, as Notify does (see :mod:`flask_dmmail.sandbox.callbacks`).
    """

    def __init__(
        self,
        seed: Mapping[str, Any] | str | os.PathLike[str] | None = None,
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
        faults: FaultConfig | None = None,
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
            "rate_limit": rate_limit,
            "burst": burst,
            "daily_limit": daily_limit,
            "restricted": restricted,
            "faults": faults or FaultConfig(),
            "seed": copy.deepcopy(dict(_load_seed(seed))) if seed is not None else {},
        }
        self._listeners: list[Callable[[Notification], None]] = []
        self._wake = threading.Condition(self.lock)
        self._ticker: threading.Thread | None = None
        self._closed = False
        self._stall_release = threading.Event()
        self._rng = random.Random()
        self.mailchimp = MailchimpState()
        self.reset()
        self.callbacks: CallbackSender | None = None
        if callback_url is not None:
            from .callbacks import CallbackSender

            self.callbacks = CallbackSender(callback_url, callback_token)
            self.add_status_listener(self.callbacks)

    def _secret(self, key_type: str, fixed: bool) -> str:
        if fixed:
            return str(uuid.uuid5(_KEY_NAMESPACE, f"{self.service_id}:{key_type}"))
        return str(uuid.uuid4())

    # ----------------------------------------------------------------- control

    def reset(self) -> None:
        """Back to the state at construction: initial seed and limits, no notifications,
        no faults, no revoked keys. The keys stay the same."""
        with self.lock:
            self.delivery_delay: float = self._initial["delivery_delay"]
            self.rate_limit: int = self._initial["rate_limit"]
            self.burst: int | None = self._initial["burst"]
            self.daily_limit: int = self._initial["daily_limit"]
            self.restricted: bool = self._initial["restricted"]
            self.faults: FaultConfig = self._initial["faults"]
            for key in self._api_keys:
                key.revoked = False
            self.templates: dict[str, Template] = {}
            self.reply_to_addresses: dict[str, ReplyToAddress] = {}
            self.team_members: list[str] = [DEFAULT_TEAM_MEMBER]
            self.guest_list: list[str] = []
            self._notifications: dict[str, Notification] = {}
            self._by_key_type: dict[str, list[Notification]] = {
                "test": [],
                "team": [],
                "normal": [],
            }
            self._order: list[Notification] = []
            self._buckets: dict[str, TokenBucket] = {}
            self._daily: dict[str, int] = {}
            self._daily_date = utcnow().date()
            self._pending: list[tuple[float, int, str, str]] = []
            self._seq = 0
            self._release_stalls()
            self.mailchimp.reset()
            self.seed(self._initial["seed"])

    def seed(self, seed: Mapping[str, Any] | str | os.PathLike[str]) -> list[str]:
        """Add or update templates, reply-to addresses, team members and guest list.

        A template whose id exists gets a new version when its content changed.
        Returns the ids of the templates in the seed.
        """
        data = _load_seed(seed)
        unknown = set(data) - {
            "templates",
            "reply_to_addresses",
            "team_members",
            "guest_list",
            "mailchimp",
        }
        if unknown:
            raise ValueError(f"seed: unknown keys {', '.join(sorted(unknown))}")
        templates = data.get("templates", [])
        replies = data.get("reply_to_addresses", [])
        if not isinstance(templates, list) or not all(isinstance(t, Mapping) for t in templates):
            raise ValueError("seed: templates must be a list of objects")
        if not isinstance(replies, list) or not all(isinstance(r, Mapping) for r in replies):
            raise ValueError("seed: reply_to_addresses must be a list of objects")
        team = _str_list(data, "team_members")
        guests = _str_list(data, "guest_list")
        parsed = [self._parse_template(t) for t in templates]
        if not all(isinstance(r.get("email_address"), str) for r in replies):
            raise ValueError("seed: every reply_to_addresses[] needs an email_address")
        parsed_replies = [
            ReplyToAddress(
                _check_uuid(r.get("id"), "reply_to_addresses[].id"), str(r["email_address"])
            )
            for r in replies
        ]
        with self.lock:
            for tid, values, archived in parsed:
                self._save_template(tid, values, archived)
            for reply in parsed_replies:
                self.reply_to_addresses[reply.id] = reply
            self.team_members.extend(a for a in team if a not in self.team_members)
            self.guest_list.extend(a for a in guests if a not in self.guest_list)
        if data.get("mailchimp") is not None:
            self.mailchimp.seed(data["mailchimp"])
        return [tid for tid, _, _ in parsed]

    @staticmethod
    def _parse_template(t: Mapping[str, Any]) -> tuple[str, dict[str, Any], bool | None]:
        tid = _check_uuid(t["id"], "templates[].id") if "id" in t else str(uuid.uuid4())
        ttype = t.get("type", "email")
        if ttype not in TEMPLATE_TYPES:
            raise ValueError(f"seed: template type must be one of {', '.join(TEMPLATE_TYPES)}")
        body = t.get("body", t.get("content"))
        if not isinstance(body, str):
            raise ValueError("seed: every template needs a body (a string)")
        subject = t.get("subject")
        if ttype == "sms":
            subject = None
        elif not isinstance(subject, str):
            raise ValueError("seed: email and letter templates need a subject (a string)")
        name = t.get("name", "Untitled template")
        archived = t.get("archived")
        values = {"name": str(name), "type": ttype, "subject": subject, "body": body}
        return tid, values, None if archived is None else bool(archived)

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
        tid, values, arch = self._parse_template(seed)
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

    def set_limits(
        self,
        *,
        rate_limit: int | None = None,
        daily_limit: int | None = None,
        burst: int | None = None,
    ) -> None:
        """Change the per-minute rate limit, the bucket size (``burst``, default Notify's
        own sizing) and/or the daily limit; refills the buckets."""
        with self.lock:
            if burst is not None:
                if burst < 1:
                    raise ValueError("burst must be at least 1")
                self.burst = burst
                self._buckets.clear()
            if rate_limit is not None:
                if rate_limit < 1:
                    raise ValueError("rate_limit must be at least 1")
                self.rate_limit = rate_limit
                self._buckets.clear()
            if daily_limit is not None:
                if daily_limit < 0:
                    raise ValueError("daily_limit must not be negative")
                self.daily_limit = daily_limit

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

    def set_faults(
        self,
        *,
        latency: float = 0.0,
        error_rate: float = 0.0,
        drop_rate: float = 0.0,
        stall_rate: float = 0.0,
        stall_seconds: float = 35.0,
        paths: Sequence[str] = ("/v2/",),
        seed: int | None = None,
    ) -> FaultConfig:
        """Replace the fault configuration (see :class:`FaultConfig`)."""
        for name, rate in (
            ("error_rate", error_rate),
            ("drop_rate", drop_rate),
            ("stall_rate", stall_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if error_rate + drop_rate + stall_rate > 1.0 + 1e-9:
            raise ValueError("error_rate + drop_rate + stall_rate must not exceed 1")
        if latency < 0 or stall_seconds < 0:
            raise ValueError("latency and stall_seconds must not be negative")
        if isinstance(paths, str) or not all(
            isinstance(p, str) and p.startswith("/") for p in paths
        ):
            raise ValueError("paths must be a list of path prefixes starting with /")
        config = FaultConfig(
            latency=float(latency),
            error_rate=float(error_rate),
            drop_rate=float(drop_rate),
            stall_rate=float(stall_rate),
            stall_seconds=float(stall_seconds),
            paths=tuple(paths),
        )
        with self.lock:
            self.faults = config
            if seed is not None:
                self._rng.seed(seed)
        return config

    def clear_faults(self) -> None:
        """No more faults; requests stalled now are answered at once."""
        with self.lock:
            self.faults = FaultConfig()
            self._release_stalls()

    def _release_stalls(self) -> None:
        self._stall_release.set()
        self._stall_release = threading.Event()

    def roll_fault(self, path: str) -> tuple[FaultConfig, str | None, threading.Event]:
        """For a request to ``path``: the fault config, which fault (``"error"``,
        ``"drop"``, ``"stall"`` or None) and the event that ends a stall early."""
        with self.lock:
            config = self.faults
            if not config.active or not path.startswith(config.paths):
                return config, None, self._stall_release
            roll = self._rng.random()
            fault: str | None = None
            if roll < config.error_rate:
                fault = "error"
            elif roll < config.error_rate + config.drop_rate:
                fault = "drop"
            elif roll < config.error_rate + config.drop_rate + config.stall_rate:
                fault = "stall"
            return config, fault, self._stall_release

    def add_status_listener(self, listener: Callable[[Notification], None]) -> None:
        """Call ``listener(notification)`` (a snapshot) after every status change."""
        with self.lock:
            self._listeners.append(listener)
            self._ensure_ticker()

    def remove_status_listener(self, listener: Callable[[Notification], None]) -> None:
        """Stop calling ``listener``."""
        with self.lock:
            self._listeners.remove(listener)

    def close(self) -> None:
        """Stop the status ticker and Mailchimp batch threads and release stalled requests."""
        with self.lock:
            self._closed = True
            self._wake.notify_all()
            self._release_stalls()
        ticker = self._ticker
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(timeout=2)
        self.mailchimp.close()
        if self.callbacks is not None:
            self.callbacks.close()

    # --------------------------------------------------------------- reading

    def outbox(self) -> list[Notification]:
        """Every stored notification of every key type, newest first, statuses current."""
        self.advance()
        with self.lock:
            return [n.snapshot() for n in reversed(self._order)]

    def get(self, notification_id: str) -> Notification | None:
        """The stored notification with this id, or None."""
        self.advance()
        with self.lock:
            found = self._notifications.get(notification_id)
            return found.snapshot() if found is not None else None

    def list_notifications(
        self,
        key_type: str,
        *,
        reference: str | None = None,
        statuses: Sequence[str] = (),
        template_types: Sequence[str] = (),
        older_than: str | None = None,
        page_size: int = 250,
    ) -> list[Notification]:
        """A page of notifications sent with ``key_type``, newest first, as Notify lists them."""
        self.advance()
        wanted_status = set(statuses)
        if "failed" in wanted_status:
            wanted_status.update(FAILED_STATUSES)
        wanted_types = set(template_types)
        with self.lock:
            items = self._by_key_type.get(key_type, [])
            end = len(items)
            if older_than is not None:
                anchor = self._notifications.get(older_than)
                if anchor is None or anchor.key_type != key_type:
                    return []
                end = items.index(anchor)
            page: list[Notification] = []
            for i in range(end - 1, -1, -1):
                n = items[i]
                if reference is not None and n.reference != reference:
                    continue
                if wanted_status and n.status not in wanted_status:
                    continue
                if wanted_types and n.type not in wanted_types:
                    continue
                page.append(n.snapshot())
                if len(page) >= page_size:
                    break
            return page

    def template(self, template_id: str) -> Template | None:
        """The template with this id (archived or not), or None."""
        with self.lock:
            return self.templates.get(template_id)

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
                "rate_limit": self.rate_limit,
                "burst": self.burst or notify_bucket_size(self.rate_limit),
                "daily_limit": self.daily_limit,
                "auto_templates": self.auto_templates,
                "team_members": list(self.team_members),
                "guest_list": list(self.guest_list),
                "reply_to_addresses": [
                    dataclasses.asdict(r) for r in self.reply_to_addresses.values()
                ],
                "faults": self.faults.to_dict(),
            }

    # ---------------------------------------------------------------- limits

    def take_rate_token(self, key_type: str) -> bool:
        """Take one token from the key type's bucket; False when it is empty."""
        with self.lock:
            bucket = self._buckets.get(key_type)
            if bucket is None:
                bucket = self._buckets[key_type] = TokenBucket(self.rate_limit, size=self.burst)
            return bucket.try_take()

    def daily_limit_reached(self, key_type: str, notification_type: str) -> bool:
        """True when one more send of this type would pass today's limit (test keys never)."""
        if key_type == "test":
            return False
        with self.lock:
            self._roll_day()
            return self._daily.get(notification_type, 0) + 1 > self.daily_limit

    def _roll_day(self) -> None:
        today = utcnow().date()
        if today != self._daily_date:
            self._daily_date = today
            self._daily.clear()

    # ------------------------------------------------------------ notifications

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
            self._notifications[notification.id] = notification
            self._by_key_type.setdefault(notification.key_type, []).append(notification)
            self._order.append(notification)
            if notification.key_type != "test":
                self._roll_day()
                self._daily[notification.type] = self._daily.get(notification.type, 0) + 1
            final = SIMULATED_FINAL_STATUS.get(
                notification.email_address.strip().lower(), "delivered"
            )
            start = time.monotonic()
            self._schedule(start + self.delivery_delay / 2, notification.id, "sending")
            self._schedule(start + self.delivery_delay, notification.id, final)

    def _schedule(self, due: float, notification_id: str, status: str) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (due, self._seq, notification_id, status))
        self._ensure_ticker()
        self._wake.notify()

    def force_status(self, notification_id: str, status: str) -> Notification:
        """Set a notification's status now (pending automatic changes are dropped)."""
        if status not in NOTIFICATION_STATUSES or status == "failed":
            raise ValueError(f"unknown status {status!r}")
        with self.lock:
            n = self._notifications.get(notification_id)
            if n is None:
                raise KeyError(notification_id)
            self._pending = [p for p in self._pending if p[2] != notification_id]
            heapq.heapify(self._pending)
            changed = self._set_status(n, status)
        if changed is not None:
            self._fire([changed])
        return n.snapshot()

    def _set_status(self, n: Notification, status: str) -> Notification | None:
        if n.status == status:
            return None
        now = utcnow()
        n.status = status
        if status != "created" and n.sent_at is None:
            n.sent_at = now
        n.completed_at = now if status in TERMINAL_STATUSES else None
        return n.snapshot()

    def advance(self) -> None:
        """Apply every status change that is due (the ticker does this too)."""
        changed = self._drain()
        if changed:
            self._fire(changed)

    def _drain(self) -> list[Notification]:
        now = time.monotonic()
        changed: list[Notification] = []
        with self.lock:
            while self._pending and self._pending[0][0] <= now:
                _, _, nid, status = heapq.heappop(self._pending)
                n = self._notifications.get(nid)
                if n is not None:
                    snap = self._set_status(n, status)
                    if snap is not None:
                        changed.append(snap)
        return changed

    def _fire(self, changed: list[Notification]) -> None:
        with self.lock:
            listeners = list(self._listeners)
        for n in changed:
            for listener in listeners:
                try:
                    listener(n)
                except Exception:
                    logger.exception("sandbox status listener failed")

    def _ensure_ticker(self) -> None:
        if self._ticker is None and not self._closed:
            self._ticker = threading.Thread(
                target=self._tick, name="dmmail-sandbox-ticker", daemon=True
            )
            self._ticker.start()

    def _stopping(self) -> bool:
        return self._closed

    def _tick(self) -> None:
        while not self._stopping():
            with self.lock:
                if not self._pending:
                    self._wake.wait()
                else:
                    wait = self._pending[0][0] - time.monotonic()
                    if wait > 0:
                        self._wake.wait(wait)
                if self._stopping():
                    return
            self.advance()

    def __repr__(self) -> str:
        return f"<SandboxState service_id={self.service_id} notifications={len(self._order)}>"


def smoke_test_address(email_address: str) -> bool:
    """True for Notify's smoke-test recipients (answered 201, never stored)."""
    return email_address.strip().lower() in SMOKE_TEST_EMAILS


def format_time(value: datetime | None) -> str | None:
    """Notify's timestamp format: ``%Y-%m-%dT%H:%M:%S.%fZ`` in UTC."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
