"""The Mailchimp half of the sandbox's store: audiences, members, webhooks, campaigns and
batches.

Everything lives in memory behind one lock. Business rules (statuses, compliance, forgotten
addresses, the send checklist) live here, so tests and benchmarks can drive the state without
HTTP; :mod:`.api` only parses requests and renders answers.

Members of an audience sit in a dict keyed by subscriber hash, in insertion order. A page of
the members collection is cut from a cached, filtered and sorted view of that dict; the cache
is dropped whenever the audience changes, so walking 100,000 members in pages of 1,000 filters
once and then slices.

Batches are run by a worker thread, one at a time, each operation through a dispatcher the
API hands over (its own handlers), so the state never holds its lock while an operation runs.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import io
import json
import re
import secrets
import tarfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import requests

from . import problems
from .problems import MailchimpProblem

__all__ = [
    "BATCH_METHODS",
    "BATCH_STATUSES",
    "DEFAULT_FAKE_DOMAINS",
    "MEMBER_STATUSES",
    "WRITABLE_STATUSES",
    "BatchDispatch",
    "BatchOperation",
    "MailchimpState",
    "SentCampaign",
    "WebhookDelivery",
    "iso",
    "parse_time",
    "subscriber_hash",
]

WRITABLE_STATUSES: Final = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
MEMBER_STATUSES: Final = (*WRITABLE_STATUSES, "archived")
CAMPAIGN_TYPES: Final = ("regular", "plaintext", "absplit", "rss", "variate")
CAMPAIGN_STATUSES: Final = (
    "save",
    "paused",
    "schedule",
    "sending",
    "sent",
    "canceled",
    "canceling",
    "archived",
)
DEFAULT_FAKE_DOMAINS: Final = frozenset(
    {"example.com", "example.org", "example.net", "test.com", "test.org", "test.net"}
)
FAKE_TLDS: Final = (".test", ".example", ".invalid", ".localhost")
DEFAULT_MERGE_FIELDS: Final = ("FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY")
MAX_BATCH_MEMBERS: Final = 500
MEMBER_SORT_FIELDS: Final = ("timestamp_opt", "timestamp_signup", "last_changed")
UNSUB_TAG: Final = "*|UNSUB|*"
_MAX_VIEWS: Final = 8
BATCH_STATUSES: Final = ("pending", "preprocessing", "started", "finalizing", "finished")
BATCH_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_BATCH_WEBHOOKS: Final = 20
_PENDING, _PREPROCESSING, _STARTED, _FINALIZING, _FINISHED = range(5)

_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def subscriber_hash(email: str) -> str:
    """Mailchimp's subscriber hash: md5 of the lowercased address."""
    return hashlib.md5(email.lower().encode("utf-8"), usedforsecurity=False).hexdigest()


def iso(t: float | None) -> str:
    """``2022-02-23T19:31:49+00:00``, or ``""`` for no time (Mailchimp never sends null)."""
    if t is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))


def parse_time(value: str) -> float:
    """Parse an ISO 8601 time (naive means UTC) to epoch seconds; ValueError if it is not one."""
    parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _new_id() -> str:
    # 10 hex digits: never contains "server", which the client rewrites in URLs.
    return secrets.token_hex(5)


def _web_id() -> int:
    return 100_000_000 + secrets.randbelow(900_000_000)


def _valid_email(email: str) -> bool:
    return len(email) <= 254 and _EMAIL_RE.match(email) is not None and ".." not in email


@dataclass(slots=True)
class _Member:
    email: str
    hash: str
    seq: int
    status: str
    changed: float
    opt: float | None = None
    signup: float | None = None
    compliance: bool = False  # self-unsubscribed or bounced: cannot be set to subscribed
    email_type: str = "html"
    merge_fields: dict[str, Any] | None = None
    tags: list[str] | None = None
    language: str = ""
    vip: bool = False
    ip_signup: str = ""
    ip_opt: str = ""
    unsubscribe_reason: str = ""


@dataclass(slots=True)
class _List:
    id: str
    web_id: int
    name: str
    created: float
    settings: dict[str, Any]
    members: dict[str, _Member] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    views: dict[tuple[Any, ...], list[_Member]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    tag_ids: dict[str, int] = field(default_factory=dict)
    last_sub: float | None = None
    last_unsub: float | None = None
    campaign_count: int = 0
    campaign_last_sent: float | None = None


@dataclass(slots=True)
class _Campaign:
    id: str
    web_id: int
    type: str
    created: float
    status: str = "save"
    list_id: str = ""
    segment_opts: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    tracking: dict[str, Any] = field(default_factory=dict)
    html: str = ""
    plain_text: str = ""
    has_content: bool = False
    send_time: float | None = None
    sending_until: float | None = None
    emails_sent: int = 0
    recipient_count: int | None = None  # frozen when sent


@dataclass(frozen=True, slots=True)
class SentCampaign:
    """A campaign the sandbox has sent, for the outbox page."""

    id: str
    title: str
    subject_line: str
    from_name: str
    reply_to: str
    list_id: str
    list_name: str
    html: str
    plain_text: str
    recipient_count: int
    send_time: str


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One form-encoded webhook POST the sandbox made (or tried to make)."""

    url: str
    type: str
    form: tuple[tuple[str, str], ...]
    status_code: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class BatchOperation:
    """One operation of a batch, as submitted (``path`` is relative to ``/3.0``)."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    operation_id: str | None = None


#: Runs one operation through the API as the batch's submitter; gives (status, body text).
BatchDispatch = Callable[[BatchOperation], tuple[int, str]]


@dataclass(slots=True)
class _Batch:
    id: str
    operations: list[BatchOperation]
    dispatch: BatchDispatch
    root: str  # the sandbox's URL as the submitter saw it, for response_body_url
    submitted: float
    seconds: float
    claimed: bool = False  # the worker has started its operations
    finished: int = 0
    errored: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    archive: bytes | None = None  # the results tar.gz, once every operation has run
    done_at: float | None = None
    announced: bool = False  # batch webhooks queued (when it showed as finished)


def _camp_settings(given: Mapping[str, Any] | None) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "subject_line": "",
        "preview_text": "",
        "title": "",
        "from_name": "",
        "reply_to": "",
        "use_conversation": False,
        "to_name": "",
        "folder_id": "",
        "authenticate": True,
        "auto_footer": False,
        "inline_css": False,
        "auto_tweet": False,
        "fb_comments": True,
        "timewarp": False,
        "template_id": 0,
        "drag_and_drop": False,
    }
    if given:
        settings.update(given)
    return settings


def _camp_tracking(given: Mapping[str, Any] | None) -> dict[str, Any]:
    tracking: dict[str, Any] = {
        "opens": True,
        "html_clicks": True,
        "text_clicks": False,
        "goal_tracking": False,
        "ecomm360": False,
        "google_analytics": "",
        "clicktale": "",
    }
    if given:
        tracking.update(given)
    return tracking


def html_to_text(html: str) -> str:
    """A rough plain-text rendering of campaign HTML, as Mailchimp generates one."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", html)
    text = re.sub(r'(?is)<a\b[^>]*href="([^"]*)"[^>]*>(.*?)</a>', r"\2 (\1)", text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</h[1-6]>|</li>|</tr>|</div>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = html_lib.unescape(text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise problems.schema_mismatch("", "object", problems.type_name(body))
    return body


def _require_url(url: Any) -> str:
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
        raise problems.invalid_resource(
            errors=[{"field": "url", "message": "This value should be a valid URL."}]
        )
    return url


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_query_value(v) for v in value)
    return str(value)


def _parse_operations(body: Any) -> list[BatchOperation]:
    """The ``operations`` of a POST /batches body, checked against Mailchimp's schema.

    ``params`` become query parameters (lists joined with commas, as the client sends
    ``fields``); ``body`` must be a JSON *string*, as Mailchimp's schema says. The field
    names in the errors (``operations.0.body``) are the sandbox's own.
    """
    body = _require_object(body)
    if "operations" not in body:
        raise problems.required_fields("operations")
    operations = body["operations"]
    if not isinstance(operations, list):
        raise problems.schema_mismatch("operations", "array", problems.type_name(operations))
    parsed: list[BatchOperation] = []
    for number, op in enumerate(operations):
        where = f"operations.{number}"
        if not isinstance(op, dict):
            raise problems.schema_mismatch(where, "object", problems.type_name(op))
        missing = [k for k in ("method", "path") if op.get(k) is None]
        if missing:
            message = "Required fields were not provided: " + ", ".join(missing)
            raise problems.invalid_resource(errors=[{"field": where, "message": message}])
        if op["method"] not in BATCH_METHODS:
            message = (
                "Data presented is not one of the accepted values: "
                + ", ".join(BATCH_METHODS)
                + "."
            )
            raise problems.invalid_resource(
                errors=[{"field": f"{where}.method", "message": message}]
            )
        for name, kind, expected in (
            ("path", str, "string"),
            ("params", dict, "object"),
            ("body", str, "string"),
            ("operation_id", str, "string"),
        ):
            value = op.get(name)
            if value is not None and not isinstance(value, kind):
                raise problems.schema_mismatch(
                    f"{where}.{name}", expected, problems.type_name(value)
                )
        params = op.get("params") or {}
        parsed.append(
            BatchOperation(
                method=op["method"],
                path=op["path"],
                params=tuple((str(k), _query_value(v)) for k, v in params.items() if v is not None),
                body=op.get("body"),
                operation_id=op.get("operation_id"),
            )
        )
    return parsed


def _results_archive(
    batch_id: str, results: Sequence[Mapping[str, Any]], per_file: int, mtime: float
) -> bytes:
    """A gzipped tar of JSON files, each an array of ``{status_code, operation_id, response}``."""
    buffer = io.BytesIO()
    chunks = [results[i : i + per_file] for i in range(0, len(results), per_file)] or [[]]
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for number, chunk in enumerate(chunks):
            data = json.dumps(list(chunk), ensure_ascii=False, separators=(",", ":")).encode()
            info = tarfile.TarInfo(f"{batch_id}-{number}.json")
            info.size = len(data)
            info.mtime = int(mtime)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class MailchimpState:
    """The in-memory Mailchimp account the sandbox serves under ``/3.0``.

    Thread-safe: every public method takes the state's lock.

    ``api_key`` is the account's key (``<32 hex>-us5``); :meth:`add_api_key` and
    :meth:`add_access_token` accept more. ``connection_limit`` is the number of requests one
    key may have in flight before the API answers 429. ``clock`` gives epoch seconds (tests
    may pass or assign their own). ``send_seconds`` is how long a sent campaign stays ``sending``.
    ``batch_seconds`` is how long a batch takes from ``pending`` to ``finished`` (each of the
    four steps a quarter of it; 0: as fast as its operations run), and ``batch_file_size``
    how many operation results go in each JSON file of a finished batch's archive.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        connection_limit: int = 10,
        clock: Callable[[], float] = time.time,
        max_lists: int = 100,
        send_seconds: float = 0.0,
        batch_seconds: float = 0.0,
        batch_file_size: int = 1000,
        deliver_webhooks: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self._initial: dict[str, Any] = {
            "clock": clock,
            "connection_limit": connection_limit,
            "max_lists": max_lists,
            "send_seconds": send_seconds,
            "batch_seconds": batch_seconds,
            "batch_file_size": batch_file_size,
            "deliver_webhooks": deliver_webhooks,
        }
        self._in_flight: Counter[str] = Counter()
        self._webhook_threads: list[threading.Thread] = []
        self._batch_worker: threading.Thread | None = None
        self._batch_wake = threading.Event()
        self._closed = False
        self.api_key: str = api_key or f"{secrets.token_hex(16)}-us5"
        self._keys: set[str] = {self.api_key}
        self._tokens: set[str] = set()
        self.reset()

    # ----------------------------------------------------------------- lifecycle, keys

    def reset(self) -> None:
        """Back to the state at construction: no audiences, members, campaigns, batches or
        webhooks, the fake rule off, the constructor's settings. Keys stay the same."""
        with self._lock:
            self.clock: Callable[[], float] = self._initial["clock"]
            self.connection_limit: int = self._initial["connection_limit"]
            self.max_lists: int = self._initial["max_lists"]
            self.send_seconds: float = self._initial["send_seconds"]
            self.batch_seconds: float = self._initial["batch_seconds"]
            self.batch_file_size: int = self._initial["batch_file_size"]
            self.deliver_webhooks: bool = self._initial["deliver_webhooks"]
            self._lists: dict[str, _List] = {}
            self._campaigns: dict[str, _Campaign] = {}
            self._batches: dict[str, _Batch] = {}
            self._batch_webhooks: dict[str, dict[str, Any]] = {}
            self._batch_wake.set()  # a worker running a dropped batch stops
            self._sent: list[SentCampaign] = []
            self._deliveries: list[WebhookDelivery] = []
            self._outgoing: list[tuple[str, str, list[tuple[str, str]]]] = []
            self._seq = 0
            self._tag_seq = 1000
            self._fake_enabled = False
            self._fake_domains: frozenset[str] = DEFAULT_FAKE_DOMAINS
            self._fake_addresses: frozenset[str] = frozenset()

    def add_api_key(self, key: str | None = None) -> str:
        """Accept another API key (Basic auth); returns it. Generates one if not given."""
        with self._lock:
            key = key or f"{secrets.token_hex(16)}-us5"
            self._keys.add(key)
            return key

    def revoke_api_key(self, key: str) -> None:
        with self._lock:
            self._keys.discard(key)

    def add_access_token(self, token: str | None = None) -> str:
        """Accept an OAuth access token (Bearer auth); returns it."""
        with self._lock:
            token = token or secrets.token_hex(16)
            self._tokens.add(token)
            return token

    def key_is_valid(self, key: str, *, bearer: bool = False) -> bool:
        with self._lock:
            return key in self._keys or (bearer and key in self._tokens)

    def enter_request(self, key: str) -> bool:
        """Count a request in flight for ``key``; False if that would exceed the limit."""
        with self._lock:
            if self._in_flight[key] >= self.connection_limit:
                return False
            self._in_flight[key] += 1
            return True

    def leave_request(self, key: str) -> None:
        with self._lock:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]

    def in_flight(self, key: str) -> int:
        with self._lock:
            return self._in_flight[key]

    def set_fake_rule(
        self,
        enabled: bool = True,
        *,
        domains: Iterable[str] | None = None,
        addresses: Iterable[str] | None = None,
    ) -> None:
        """Switch the "looks fake or invalid" rule (off by default).

        When on, addresses at ``domains`` (default :data:`DEFAULT_FAKE_DOMAINS`), at the
        reserved ``.test``/``.example``/``.invalid``/``.localhost`` TLDs, and the exact
        ``addresses`` are refused with Mailchimp's "looks fake or invalid" detail.
        """
        with self._lock:
            self._fake_enabled = enabled
            if domains is not None:
                self._fake_domains = frozenset(d.lower().lstrip("@") for d in domains)
            if addresses is not None:
                self._fake_addresses = frozenset(a.lower() for a in addresses)

    def _looks_fake(self, email: str) -> bool:
        if not self._fake_enabled:
            return False
        lowered = email.lower()
        domain = lowered.rsplit("@", 1)[-1]
        return (
            lowered in self._fake_addresses
            or domain in self._fake_domains
            or domain.endswith(FAKE_TLDS)
        )

    # ----------------------------------------------------------------- seeding

    def seed(self, mapping: Mapping[str, Any]) -> None:
        """Load audiences (and their members) from a mapping.

        Accepts ``{"mailchimp": {...}}`` or the inner part: ``{"lists": [{"id", "name",
        "members": ["a@x.org" | {"email_address", "status", "merge_fields", "tags"}]}],
        "fake_rule": bool | {"enabled", "domains", "addresses"}}``.
        """
        data = mapping.get("mailchimp", mapping)
        if not isinstance(data, Mapping):
            raise ValueError("seed: mailchimp must be a mapping")
        unknown = set(data) - {"lists", "fake_rule"}
        if unknown:
            raise ValueError(f"seed: mailchimp has unknown keys {', '.join(sorted(unknown))}")
        lists = data.get("lists", [])
        if not isinstance(lists, list) or not all(isinstance(x, Mapping) for x in lists):
            raise ValueError("seed: mailchimp.lists must be a list of objects")
        for entry in lists:
            members = entry.get("members", [])
            if not isinstance(members, list) or not all(
                isinstance(m, str) or (isinstance(m, Mapping) and "email_address" in m)
                for m in members
            ):
                raise ValueError(
                    "seed: mailchimp.lists[].members must be addresses or objects with "
                    "an email_address"
                )
            list_id = self.ensure_list(
                entry.get("id"),
                str(entry.get("name", "Sandbox audience")),
                **{k: v for k, v in entry.items() if k not in ("id", "name", "members")},
            )
            plain: list[str] = []
            for member in members:
                if isinstance(member, str):
                    plain.append(member)
                else:
                    self.add_members(
                        list_id,
                        [member["email_address"]],
                        status=member.get("status", "subscribed"),
                        merge_fields=member.get("merge_fields"),
                        tags=member.get("tags"),
                    )
            if plain:
                self.add_members(list_id, plain)
        fake = data.get("fake_rule")
        if isinstance(fake, Mapping):
            self.set_fake_rule(
                bool(fake.get("enabled", True)),
                domains=fake.get("domains"),
                addresses=fake.get("addresses"),
            )
        elif fake is not None:
            self.set_fake_rule(bool(fake))

    # ----------------------------------------------------------------- lists

    def create_list(
        self,
        name: str,
        *,
        list_id: str | None = None,
        contact: Mapping[str, Any] | None = None,
        permission_reminder: str = "You signed up for updates from the Digital Marketplace.",
        campaign_defaults: Mapping[str, Any] | None = None,
        email_type_option: bool = False,
        **settings: Any,
    ) -> str:
        """Create an audience without HTTP (no plan cap); returns its id.

        ``list_id`` may be chosen by the caller (the extension pre-creates configured
        audiences); it must not contain "server", which the official client rewrites.
        """
        with self._lock:
            if list_id is not None:
                if "server" in list_id or "/" in list_id or not list_id:
                    raise ValueError(f"unusable list id {list_id!r}")
                if list_id in self._lists:
                    raise ValueError(f"list {list_id!r} already exists")
            lst = _List(
                id=list_id or self._unused_list_id(),
                web_id=_web_id(),
                name=name,
                created=self.clock(),
                settings={
                    "contact": {
                        "company": "Crown Commercial Service",
                        "address1": "The Capital",
                        "address2": "",
                        "city": "Liverpool",
                        "state": "",
                        "zip": "L3 9PP",
                        "country": "GB",
                        "phone": "",
                        **(contact or {}),
                    },
                    "permission_reminder": permission_reminder,
                    "campaign_defaults": {
                        "from_name": "Digital Marketplace",
                        "from_email": "enquiries@digitalmarketplace.service.gov.uk",
                        "subject": "",
                        "language": "en",
                        **(campaign_defaults or {}),
                    },
                    "email_type_option": email_type_option,
                    "use_archive_bar": True,
                    "notify_on_subscribe": "",
                    "notify_on_unsubscribe": "",
                    "double_optin": False,
                    "marketing_permissions": False,
                    "visibility": "pub",
                    **settings,
                },
            )
            self._lists[lst.id] = lst
            return lst.id

    def ensure_list(self, list_id: str | None, name: str, **fields: Any) -> str:
        """Create the audience ``list_id`` unless it exists; returns its id."""
        with self._lock:
            if list_id is not None and list_id in self._lists:
                return list_id
            return self.create_list(name, list_id=list_id, **fields)

    def _unused_list_id(self) -> str:
        while True:
            candidate = _new_id()
            if candidate not in self._lists:
                return candidate

    def _list(self, list_id: str) -> _List:
        lst = self._lists.get(list_id)
        if lst is None:
            raise problems.not_found()
        return lst

    def api_create_list(self, body: Any, base: str) -> dict[str, Any]:
        """POST /lists: validate like Mailchimp, then create."""
        body = _require_object(body)
        missing = [
            k
            for k in (
                "name",
                "contact",
                "permission_reminder",
                "campaign_defaults",
                "email_type_option",
            )
            if k not in body
        ]
        if missing:
            raise problems.required_fields(*missing)
        errors: list[dict[str, str]] = []
        for key, kind in (("name", str), ("permission_reminder", str)):
            if not isinstance(body[key], kind):
                errors.append(_schema_error(key, "string", body[key]))
        if not isinstance(body["email_type_option"], bool):
            errors.append(_schema_error("email_type_option", "boolean", body["email_type_option"]))
        for key, required in (
            ("contact", ("company", "address1", "city", "country")),
            ("campaign_defaults", ("from_name", "from_email", "subject", "language")),
        ):
            value = body[key]
            if not isinstance(value, dict):
                errors.append(_schema_error(key, "object", value))
                continue
            absent = [r for r in required if r not in value]
            if absent:
                message = "Required fields were not provided: " + ", ".join(absent)
                errors.append({"field": key, "message": message})
            for sub, subvalue in value.items():
                if not isinstance(subvalue, str):
                    errors.append(_schema_error(f"{key}.{sub}", "string", subvalue))
        if errors:
            raise problems.invalid_resource(errors=errors)
        if body["name"].strip() == "":
            raise problems.invalid_resource(
                errors=[{"field": "name", "message": "This value should not be blank."}]
            )
        with self._lock:
            if len(self._lists) >= self.max_lists:
                raise MailchimpProblem(
                    403,
                    "User Action Not Allowed",
                    "You have reached the maximum number of audiences allowed on your plan.",
                )
            extra = {
                k: v
                for k, v in body.items()
                if k
                in (
                    "use_archive_bar",
                    "notify_on_subscribe",
                    "notify_on_unsubscribe",
                    "double_optin",
                    "marketing_permissions",
                    "visibility",
                )
            }
            list_id = self.create_list(
                body["name"],
                contact=body["contact"],
                permission_reminder=body["permission_reminder"],
                campaign_defaults=body["campaign_defaults"],
                email_type_option=body["email_type_option"],
                **extra,
            )
            return self._list_json(self._lists[list_id], base, include_total=False)

    def get_list(
        self, list_id: str, base: str, *, include_total_contacts: bool = False
    ) -> dict[str, Any]:
        with self._lock:
            return self._list_json(self._list(list_id), base, include_total=include_total_contacts)

    def get_lists(
        self,
        base: str,
        *,
        count: int = 10,
        offset: int = 0,
        email: str | None = None,
        include_total_contacts: bool = False,
    ) -> dict[str, Any]:
        with self._lock:
            lists = list(self._lists.values())
            if email is not None:
                key = subscriber_hash(email)
                lists = [lst for lst in lists if key in lst.members]
            page = lists[offset : offset + count]
            return {
                "lists": [
                    self._list_json(x, base, include_total=include_total_contacts) for x in page
                ],
                "total_items": len(lists),
                "constraints": {
                    "may_create": len(self._lists) < self.max_lists,
                    "max_instances": self.max_lists,
                    "current_total_instances": len(self._lists),
                },
                "_links": _collection_links(f"{base}/lists"),
            }

    def delete_list(self, list_id: str) -> None:
        with self._lock:
            self._list(list_id)
            del self._lists[list_id]

    def update_list(self, list_id: str, body: Any, base: str) -> dict[str, Any]:
        body = _require_object(body)
        with self._lock:
            lst = self._list(list_id)
            if "name" in body:
                lst.name = str(body["name"])
            for key, value in body.items():
                if key in ("contact", "campaign_defaults") and isinstance(value, dict):
                    lst.settings[key].update(value)
                elif key != "name":
                    lst.settings[key] = value
            return self._list_json(lst, base, include_total=False)

    def _list_json(self, lst: _List, base: str, *, include_total: bool) -> dict[str, Any]:
        counts = lst.counts
        stats: dict[str, Any] = {
            "member_count": counts["subscribed"],
            "unsubscribe_count": counts["unsubscribed"],
            "cleaned_count": counts["cleaned"],
            "member_count_since_send": counts["subscribed"],
            "unsubscribe_count_since_send": 0,
            "cleaned_count_since_send": 0,
            "campaign_count": lst.campaign_count,
            "campaign_last_sent": iso(lst.campaign_last_sent),
            "merge_field_count": len(DEFAULT_MERGE_FIELDS),
            "avg_sub_rate": 0,
            "avg_unsub_rate": 0,
            "target_sub_rate": 0,
            "open_rate": 0,
            "click_rate": 0,
            "last_sub_date": iso(lst.last_sub),
            "last_unsub_date": iso(lst.last_unsub),
        }
        if include_total:
            stats["total_contacts"] = len(lst.members)
        s = lst.settings
        href = f"{base}/lists/{lst.id}"
        return {
            "id": lst.id,
            "web_id": lst.web_id,
            "name": lst.name,
            "contact": dict(s["contact"]),
            "permission_reminder": s["permission_reminder"],
            "use_archive_bar": s["use_archive_bar"],
            "campaign_defaults": dict(s["campaign_defaults"]),
            "notify_on_subscribe": s["notify_on_subscribe"],
            "notify_on_unsubscribe": s["notify_on_unsubscribe"],
            "date_created": iso(lst.created),
            "list_rating": 0,
            "email_type_option": s["email_type_option"],
            "subscribe_url_short": f"http://eepurl.com/{lst.id[:6]}",
            "subscribe_url_long": f"https://sandbox.us5.list-manage.com/subscribe?id={lst.id}",
            "beamer_address": f"us5-{lst.id}@inbound.mailchimp.com",
            "visibility": s["visibility"],
            "double_optin": s["double_optin"],
            "has_welcome": False,
            "marketing_permissions": s["marketing_permissions"],
            "modules": [],
            "stats": stats,
            "_links": [
                {"rel": "self", "href": href, "method": "GET"},
                {"rel": "parent", "href": f"{base}/lists", "method": "GET"},
                {"rel": "update", "href": href, "method": "PATCH"},
                {"rel": "batch-sub-unsub-members", "href": href, "method": "POST"},
                {"rel": "delete", "href": href, "method": "DELETE"},
                {"rel": "members", "href": f"{href}/members", "method": "GET"},
                {"rel": "webhooks", "href": f"{href}/webhooks", "method": "GET"},
            ],
        }

    # ----------------------------------------------------------------- members: helpers

    def _member_key(self, key: str) -> str:
        """The subscriber hash for a path segment: an md5 hash or a raw address."""
        lowered = key.lower()
        return lowered if _HEX32.match(lowered) else subscriber_hash(key)

    def _member(self, lst: _List, key: str) -> _Member:
        member = lst.members.get(self._member_key(key))
        if member is None:
            raise problems.not_found()
        return member

    def _changed(self, lst: _List) -> None:
        lst.views.clear()

    def _set_status(self, lst: _List, m: _Member, status: str, *, source: str = "api") -> None:
        """Move ``m`` to ``status``, keeping counts, times and compliance flags right."""
        old = m.status
        now = self.clock()
        if old != status:
            lst.counts[old] -= 1
            lst.counts[status] += 1
            m.status = status
        if status == "subscribed" and (old != "subscribed" or m.opt is None):
            m.opt = now
            lst.last_sub = now
        if status == "cleaned":
            m.compliance = True
        if status == "unsubscribed" and old != "unsubscribed":
            lst.last_unsub = now
            m.unsubscribe_reason = "N/A (Unsubscribed by an admin)" if source != "user" else ""
        m.changed = now
        if old != status and status in ("unsubscribed", "cleaned"):
            self._queue_webhook(
                lst, m, "unsubscribe" if status == "unsubscribed" else "cleaned", source
            )

    def _check_email(self, email: Any, field_name: str = "email_address") -> str:
        if not isinstance(email, str):
            raise problems.schema_mismatch(field_name, "string", problems.type_name(email))
        if not _valid_email(email):
            raise problems.invalid_email()
        if self._looks_fake(email):
            raise problems.looks_fake(email)
        return email

    @staticmethod
    def _check_status(value: Any, field_name: str) -> str:
        if value not in WRITABLE_STATUSES:
            message = (
                "Data presented is not one of the accepted values: "
                + ", ".join(WRITABLE_STATUSES)
                + "."
            )
            raise problems.invalid_resource(errors=[{"field": field_name, "message": message}])
        return str(value)

    def _new_member(self, lst: _List, email: str, key: str, status: str) -> _Member:
        self._seq += 1
        now = self.clock()
        member = _Member(email=email, hash=key, seq=self._seq, status=status, changed=now)
        lst.members[key] = member
        lst.counts[status] += 1
        if status == "subscribed":
            member.opt = now
            lst.last_sub = now
        elif status == "cleaned":
            member.compliance = True
        return member

    def _apply_fields(
        self, lst: _List, m: _Member, body: Mapping[str, Any], *, sync_tags: bool
    ) -> None:
        merge = body.get("merge_fields")
        if merge is not None:
            if not isinstance(merge, dict):
                raise problems.schema_mismatch("merge_fields", "object", problems.type_name(merge))
            m.merge_fields = {**(m.merge_fields or {}), **merge}
        if "email_type" in body:
            m.email_type = "text" if body["email_type"] == "text" else "html"
        if isinstance(body.get("language"), str):
            m.language = body["language"]
        if isinstance(body.get("vip"), bool):
            m.vip = body["vip"]
        if isinstance(body.get("ip_signup"), str):
            m.ip_signup = body["ip_signup"]
        if isinstance(body.get("ip_opt"), str):
            m.ip_opt = body["ip_opt"]
        for name in ("timestamp_signup", "timestamp_opt"):
            if isinstance(body.get(name), str) and body[name]:
                try:
                    stamp = parse_time(body[name])
                except ValueError:
                    continue
                if name == "timestamp_signup":
                    m.signup = stamp
                else:
                    m.opt = stamp
        tags = body.get("tags")
        if tags is not None:
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise problems.schema_mismatch("tags", "array", problems.type_name(tags))
            self._set_tags(lst, m, tags, replace=sync_tags)

    def _set_tags(self, lst: _List, m: _Member, names: Sequence[str], *, replace: bool) -> None:
        current = [] if replace else list(m.tags or ())
        for name in names:
            if name not in lst.tag_ids:
                self._tag_seq += 1
                lst.tag_ids[name] = self._tag_seq
            if name not in current:
                current.append(name)
        m.tags = current or None

    # ----------------------------------------------------------------- members: API

    def add_member(self, list_id: str, body: Any, base: str) -> dict[str, Any]:
        """POST /lists/{id}/members."""
        body = _require_object(body)
        with self._lock:
            lst = self._list(list_id)
            missing = [k for k in ("email_address", "status") if k not in body]
            if missing:
                raise problems.required_fields(*missing)
            email = self._check_email(body["email_address"])
            status = self._check_status(body["status"], "status")
            member = self._add_or_readd(lst, email, status, body, sync_tags=False)
            return self._member_json(lst, member, base)

    def _add_or_readd(
        self, lst: _List, email: str, status: str, body: Mapping[str, Any], *, sync_tags: bool
    ) -> _Member:
        key = subscriber_hash(email)
        if key in lst.forgotten:
            raise problems.forgotten_email(email)
        existing = lst.members.get(key)
        if existing is not None and existing.status != "archived":
            raise problems.member_exists(email)
        if existing is not None:
            if status == "subscribed" and existing.compliance:
                raise problems.compliance_state(email)
            self._apply_fields(lst, existing, body, sync_tags=sync_tags)
            self._set_status(lst, existing, status)
            existing.email = email
            self._changed(lst)
            return existing
        member = self._new_member(lst, email, key, status)
        try:
            self._apply_fields(lst, member, body, sync_tags=sync_tags)
        except MailchimpProblem:
            self._drop(lst, member)
            raise
        self._changed(lst)
        return member

    def _drop(self, lst: _List, member: _Member) -> None:
        del lst.members[member.hash]
        lst.counts[member.status] -= 1

    def set_member(self, list_id: str, key: str, body: Any, base: str) -> dict[str, Any]:
        """PUT /lists/{id}/members/{hash}: add or update; unarchives."""
        body = _require_object(body)
        with self._lock:
            lst = self._list(list_id)
            missing = [k for k in ("email_address", "status_if_new") if k not in body]
            if missing:
                raise problems.required_fields(*missing)
            email = self._check_email(body["email_address"])
            status_if_new = self._check_status(body["status_if_new"], "status_if_new")
            status = self._check_status(body["status"], "status") if "status" in body else None
            path_key = self._member_key(key)
            if path_key in lst.forgotten or subscriber_hash(email) in lst.forgotten:
                raise problems.forgotten_email(email)
            member = lst.members.get(path_key)
            if member is None:
                if path_key != subscriber_hash(email):
                    raise problems.invalid_resource(
                        errors=[
                            {
                                "field": "email_address",
                                "message": "The subscriber hash in the URL does not match "
                                "the lowercase MD5 hash of the email address.",
                            }
                        ]
                    )
                return self._member_json(
                    lst, self._add_or_readd(lst, email, status_if_new, body, sync_tags=False), base
                )
            new_status = status or (status_if_new if member.status == "archived" else None)
            self._update(lst, member, email, new_status, body)
            return self._member_json(lst, member, base)

    def _update(
        self,
        lst: _List,
        member: _Member,
        email: str | None,
        status: str | None,
        body: Mapping[str, Any],
    ) -> None:
        if status == "subscribed" and member.status != "subscribed" and member.compliance:
            raise problems.compliance_state(member.email)
        if email is not None and subscriber_hash(email) != member.hash:
            new_key = subscriber_hash(email)
            if new_key in lst.members:
                raise problems.member_exists(email)
            del lst.members[member.hash]
            member.hash = new_key
            lst.members[new_key] = member
        if email is not None:
            member.email = email
        self._apply_fields(lst, member, body, sync_tags=False)
        if status is not None:
            self._set_status(lst, member, status)
        member.changed = self.clock()
        self._changed(lst)

    def update_member(self, list_id: str, key: str, body: Any, base: str) -> dict[str, Any]:
        """PATCH /lists/{id}/members/{hash}: 404 when the member is missing."""
        body = _require_object(body)
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, key)
            email = self._check_email(body["email_address"]) if "email_address" in body else None
            status = None
            if "status" in body:
                if body["status"] == "transactional":
                    self._check_status(None, "status")
                status = self._check_status(body["status"], "status")
            self._update(lst, member, email, status, body)
            return self._member_json(lst, member, base)

    def get_member(self, list_id: str, key: str, base: str) -> dict[str, Any]:
        with self._lock:
            lst = self._list(list_id)
            return self._member_json(lst, self._member(lst, key), base)

    def archive_member(self, list_id: str, key: str) -> None:
        """DELETE /lists/{id}/members/{hash}: archive; 405 for archived/pending/cleaned."""
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, key)
            if member.status in ("archived", "pending", "cleaned"):
                raise MailchimpProblem(
                    405,
                    "Method Not Allowed",
                    "This list member cannot be removed. "
                    "Can not archive a contact that is bounced, pending or archived",
                    headers={"Allow": "GET, PUT"},
                )
            self._set_status(lst, member, "archived")
            self._changed(lst)

    def delete_member_permanent(self, list_id: str, key: str) -> None:
        """POST …/actions/delete-permanent: gone, and refused on POST/PUT forever."""
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, key)
            self._drop(lst, member)
            lst.forgotten.add(member.hash)
            self._changed(lst)

    def get_member_tags(self, list_id: str, key: str, base: str) -> dict[str, Any]:
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, key)
            tags = [
                {"id": lst.tag_ids[name], "name": name, "date_added": iso(member.changed)}
                for name in member.tags or ()
            ]
            return {"tags": tags, "total_items": len(tags), "_links": []}

    def update_member_tags(self, list_id: str, key: str, body: Any) -> None:
        """POST …/tags ``{tags: [{name, status: active|inactive}]}``."""
        body = _require_object(body)
        tags = body.get("tags")
        if not isinstance(tags, list):
            raise problems.required_fields("tags")
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, key)
            current = list(member.tags or ())
            for tag in tags:
                if not isinstance(tag, dict) or not isinstance(tag.get("name"), str):
                    raise problems.schema_mismatch("tags", "object", problems.type_name(tag))
                name = tag["name"]
                if tag.get("status", "active") == "inactive":
                    if name in current:
                        current.remove(name)
                else:
                    self._set_tags(lst, member, [name], replace=False)
                    current = list(member.tags or ())
            member.tags = current or None
            member.changed = self.clock()
            self._changed(lst)

    def batch_members(self, list_id: str, body: Any, base: str) -> dict[str, Any]:
        """POST /lists/{id}: up to 500 members, each added, updated or refused."""
        body = _require_object(body)
        members = body.get("members")
        if members is None:
            raise problems.required_fields("members")
        if not isinstance(members, list):
            raise problems.schema_mismatch("members", "array", problems.type_name(members))
        if len(members) > MAX_BATCH_MEMBERS:
            raise problems.invalid_resource(
                errors=[
                    {
                        "field": "members",
                        "message": f"Maximum array size is {MAX_BATCH_MEMBERS} items.",
                    }
                ]
            )
        update_existing = bool(body.get("update_existing", False))
        sync_tags = bool(body.get("sync_tags", False))
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        with self._lock:
            lst = self._list(list_id)
            for item in members:
                email = item.get("email_address") if isinstance(item, dict) else None
                try:
                    if not isinstance(item, dict):
                        raise problems.schema_mismatch("", "object", problems.type_name(item))
                    checked = self._check_email(email)
                    key = subscriber_hash(checked)
                    existing = lst.members.get(key)
                    if key in lst.forgotten:
                        raise problems.forgotten_email(checked)
                    status_given = item.get("status")
                    if existing is not None and existing.status != "archived":
                        if not update_existing:
                            errors.append(
                                {
                                    "email_address": checked,
                                    "error": f"{checked} is already a list member, do you want "
                                    "to update? please provide update_existing:true in the "
                                    "request body",
                                    "error_code": "ERROR_CONTACT_EXISTS",
                                    "field": "",
                                    "field_message": "",
                                }
                            )
                            continue
                        status = (
                            self._check_status(status_given, "status")
                            if status_given is not None
                            else None
                        )
                        self._update(lst, existing, checked, status, {**item, "tags": None})
                        if item.get("tags") is not None:
                            self._apply_fields(
                                lst, existing, {"tags": item["tags"]}, sync_tags=sync_tags
                            )
                        updated.append(self._member_json(lst, existing, base))
                    else:
                        status_new = (
                            status_given if status_given is not None else item.get("status_if_new")
                        )
                        if status_new is None:
                            raise problems.required_fields("status")
                        status = self._check_status(status_new, "status")
                        member = self._add_or_readd(lst, checked, status, item, sync_tags=sync_tags)
                        created.append(self._member_json(lst, member, base))
                except MailchimpProblem as problem:
                    message = problem.detail
                    if problem.errors:
                        message = "; ".join(e.get("message", "") for e in problem.errors)
                    errors.append(
                        {
                            "email_address": email if isinstance(email, str) else "",
                            "error": message,
                            "error_code": "ERROR_GENERIC",
                            "field": "",
                            "field_message": "",
                        }
                    )
        self.flush_webhooks()
        return {
            "new_members": created,
            "updated_members": updated,
            "errors": errors,
            "total_created": len(created),
            "total_updated": len(updated),
            "error_count": len(errors),
            "_links": [
                {"rel": "parent", "href": f"{base}/lists/{list_id}", "method": "GET"},
            ],
        }

    # ----------------------------------------------------------------- members: bulk + pages

    def add_members(
        self,
        list_id: str,
        emails: Iterable[str],
        *,
        status: str = "subscribed",
        merge_fields: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        compliance: bool | None = None,
    ) -> int:
        """Bulk-load members without HTTP or validation; returns how many were new.

        Existing members are left alone. ``compliance`` marks the members as having
        unsubscribed themselves (default: True for ``unsubscribed`` and ``cleaned``), so
        subscribing them through the API gives "Member In Compliance State".
        """
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown member status {status!r}")
        flag = status in ("unsubscribed", "cleaned") if compliance is None else compliance
        shared_merge = dict(merge_fields) if merge_fields else None
        tag_list = list(tags) if tags else None
        added = 0
        with self._lock:
            lst = self._list(list_id)
            now = self.clock()
            members = lst.members
            for email in emails:
                key = subscriber_hash(email)
                if key in members:
                    continue
                self._seq += 1
                members[key] = _Member(
                    email=email,
                    hash=key,
                    seq=self._seq,
                    status=status,
                    changed=now,
                    opt=now if status == "subscribed" else None,
                    compliance=flag,
                    merge_fields=dict(shared_merge) if shared_merge else None,
                )
                if tag_list:
                    self._set_tags(lst, members[key], tag_list, replace=True)
                lst.forgotten.discard(key)
                added += 1
            lst.counts[status] += added
            if added and status == "subscribed":
                lst.last_sub = now
            self._changed(lst)
        return added

    def members_page(
        self,
        list_id: str,
        base: str,
        *,
        count: int = 10,
        offset: int = 0,
        status: str | None = None,
        since_last_changed: float | None = None,
        before_last_changed: float | None = None,
        since_timestamp_opt: float | None = None,
        before_timestamp_opt: float | None = None,
        unique_email_id: str | None = None,
        vip_only: bool = False,
        sort_field: str | None = None,
        sort_dir: str = "ASC",
        member_keys: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        """GET /lists/{id}/members: one page plus ``total_items``.

        Without ``status`` archived members are left out, as Mailchimp does.
        ``member_keys`` limits each member to those top-level keys (see ``fields``).
        """
        key = (
            status,
            since_last_changed,
            before_last_changed,
            since_timestamp_opt,
            before_timestamp_opt,
            unique_email_id,
            vip_only,
            sort_field,
            sort_dir.upper(),
        )
        with self._lock:
            lst = self._list(list_id)
            view = lst.views.get(key)
            if view is None:
                view = self._build_view(lst, key)
                if len(lst.views) >= _MAX_VIEWS:
                    lst.views.clear()
                lst.views[key] = view
            page = view[offset : offset + count]
            members = [self._member_json(lst, m, base, member_keys) for m in page]
            return {
                "members": members,
                "list_id": lst.id,
                "total_items": len(view),
                "_links": _collection_links(f"{base}/lists/{lst.id}/members"),
            }

    def _build_view(self, lst: _List, key: tuple[Any, ...]) -> list[_Member]:
        (
            status,
            since_lc,
            before_lc,
            since_opt,
            before_opt,
            ueid,
            vip_only,
            sort_field,
            sort_dir,
        ) = key
        if status is None:
            view = [m for m in lst.members.values() if m.status != "archived"]
        else:
            view = [m for m in lst.members.values() if m.status == status]
        if since_lc is not None:
            view = [m for m in view if m.changed >= since_lc]
        if before_lc is not None:
            view = [m for m in view if m.changed < before_lc]
        if since_opt is not None:
            view = [m for m in view if m.opt is not None and m.opt >= since_opt]
        if before_opt is not None:
            view = [m for m in view if m.opt is not None and m.opt < before_opt]
        if ueid is not None:
            view = [m for m in view if self._unique_email_id(lst, m) == ueid]
        if vip_only:
            view = [m for m in view if m.vip]
        if sort_field in MEMBER_SORT_FIELDS:
            attr = {
                "timestamp_opt": "opt",
                "timestamp_signup": "signup",
                "last_changed": "changed",
            }[sort_field]

            def sort_key(m: _Member) -> tuple[float, int]:
                value = getattr(m, attr)
                return (value if value is not None else 0.0, m.seq)

            view.sort(key=sort_key, reverse=sort_dir == "DESC")
        elif sort_dir == "DESC":
            view.reverse()
        return view

    @staticmethod
    def _unique_email_id(lst: _List, m: _Member) -> str:
        return hashlib.md5(f"{lst.id}:{m.hash}".encode(), usedforsecurity=False).hexdigest()[:10]

    def _member_json(
        self, lst: _List, m: _Member, base: str, keys: frozenset[str] | None = None
    ) -> dict[str, Any]:
        """The member as the API shows it; only the top-level ``keys`` when given (fast path
        for ``fields=members.x``: the full object costs most of a 1,000-member page)."""
        if keys is not None:
            return {
                name: make(lst, m, base)
                for name, make in _MEMBER_PARTS.items()
                if name in keys
                and (
                    name != "unsubscribe_reason"
                    or (m.status == "unsubscribed" and m.unsubscribe_reason)
                )
            }
        merge = _merge(m)
        full_name = " ".join(
            str(part) for part in (merge.get("FNAME", ""), merge.get("LNAME", "")) if part
        )
        tags = _tags(lst, m)
        data: dict[str, Any] = {
            "id": m.hash,
            "email_address": m.email,
            "unique_email_id": self._unique_email_id(lst, m),
            "contact_id": hashlib.md5(
                f"contact:{m.hash}".encode(), usedforsecurity=False
            ).hexdigest(),
            "full_name": full_name,
            "web_id": 100_000_000 + m.seq,
            "email_type": m.email_type,
            "status": m.status,
            "consents_to_one_to_one_messaging": True,
            "merge_fields": merge,
            "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
            "ip_signup": m.ip_signup,
            "timestamp_signup": iso(m.signup),
            "ip_opt": m.ip_opt,
            "timestamp_opt": iso(m.opt),
            "member_rating": 2,
            "last_changed": iso(m.changed),
            "language": m.language,
            "vip": m.vip,
            "email_client": "",
            "location": {
                "latitude": 0,
                "longitude": 0,
                "gmtoff": 0,
                "dstoff": 0,
                "country_code": "",
                "timezone": "",
            },
            "source": "API - Generic",
            "tags_count": len(tags),
            "tags": tags,
            "list_id": lst.id,
            "_links": _member_links(lst, m, base),
        }
        if m.status == "unsubscribed" and m.unsubscribe_reason:
            data["unsubscribe_reason"] = m.unsubscribe_reason
        return data

    # ----------------------------------------------------------------- user actions (no API)

    def unsubscribe(
        self, list_id: str, email: str, *, reason: str = "manual", campaign_id: str = ""
    ) -> None:
        """The person clicked "unsubscribe": status unsubscribed, compliance state, webhook."""
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, email)
            member.compliance = True
            self._set_status(lst, member, "unsubscribed", source="user")
            self._outgoing_extra(lst, reason=reason, campaign_id=campaign_id)
            self._changed(lst)
        self.flush_webhooks()

    def bounce(
        self, list_id: str, email: str, *, reason: str = "hard", campaign_id: str = ""
    ) -> None:
        """The address bounced: status cleaned (compliance state), ``cleaned`` webhook."""
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, email)
            self._set_status(lst, member, "cleaned", source="user")
            self._outgoing_extra(lst, reason=reason, campaign_id=campaign_id)
            self._changed(lst)
        self.flush_webhooks()

    def confirm(self, list_id: str, email: str) -> None:
        """The person confirmed a double opt-in: pending becomes subscribed, compliance cleared."""
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, email)
            if member.status != "pending":
                raise ValueError("only a pending member can confirm")
            member.compliance = False
            self._set_status(lst, member, "subscribed", source="user")
            self._changed(lst)

    # ----------------------------------------------------------------- webhooks

    def create_webhook(self, list_id: str, body: Any, base: str) -> dict[str, Any]:
        body = _require_object(body)
        if body.get("url") is None:
            raise problems.required_fields("url")
        url = _require_url(body["url"])
        events = {
            "subscribe": True,
            "unsubscribe": True,
            "profile": True,
            "cleaned": True,
            "upemail": True,
            "campaign": True,
        }
        sources = {"user": True, "admin": True, "api": False}
        for name, target in (("events", events), ("sources", sources)):
            given = body.get(name)
            if isinstance(given, dict):
                target.update({k: bool(v) for k, v in given.items() if k in target})
        with self._lock:
            lst = self._list(list_id)
            webhook_id = _new_id()
            lst.webhooks[webhook_id] = {
                "id": webhook_id,
                "url": url,
                "events": events,
                "sources": sources,
                "list_id": list_id,
            }
            return self._webhook_json(lst.webhooks[webhook_id], base)

    def get_webhooks(self, list_id: str, base: str) -> dict[str, Any]:
        with self._lock:
            lst = self._list(list_id)
            hooks = [self._webhook_json(w, base) for w in lst.webhooks.values()]
            return {
                "webhooks": hooks,
                "list_id": list_id,
                "total_items": len(hooks),
                "_links": _collection_links(f"{base}/lists/{list_id}/webhooks"),
            }

    def get_webhook(self, list_id: str, webhook_id: str, base: str) -> dict[str, Any]:
        with self._lock:
            hook = self._list(list_id).webhooks.get(webhook_id)
            if hook is None:
                raise problems.not_found()
            return self._webhook_json(hook, base)

    def delete_webhook(self, list_id: str, webhook_id: str) -> None:
        with self._lock:
            lst = self._list(list_id)
            if lst.webhooks.pop(webhook_id, None) is None:
                raise problems.not_found()

    @staticmethod
    def _webhook_json(hook: Mapping[str, Any], base: str) -> dict[str, Any]:
        href = f"{base}/lists/{hook['list_id']}/webhooks/{hook['id']}"
        return {
            "id": hook["id"],
            "url": hook["url"],
            "events": dict(hook["events"]),
            "sources": dict(hook["sources"]),
            "list_id": hook["list_id"],
            "_links": [{"rel": "self", "href": href, "method": "GET"}],
        }

    def _queue_webhook(self, lst: _List, m: _Member, event: str, source: str) -> None:
        if not lst.webhooks:
            return
        now = self.clock()
        merges = {"EMAIL": m.email, **{k: str(v) for k, v in (m.merge_fields or {}).items()}}
        form: list[tuple[str, str]] = [
            ("type", event),
            ("fired_at", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))),
            ("data[list_id]", lst.id),
            ("data[email]", m.email),
        ]
        if event == "unsubscribe":
            form += [
                ("data[action]", "unsub"),
                ("data[reason]", "manual"),
                ("data[id]", self._unique_email_id(lst, m)),
                ("data[email_type]", m.email_type),
                ("data[ip_opt]", m.ip_opt),
                ("data[web_id]", str(100_000_000 + m.seq)),
            ]
            form += [(f"data[merges][{k}]", v) for k, v in merges.items()]
        else:
            form += [("data[reason]", "hard")]
        for hook in lst.webhooks.values():
            if hook["events"].get(event) and hook["sources"].get(source):
                self._outgoing.append((hook["url"], event, list(form)))

    def _outgoing_extra(self, lst: _List, *, reason: str, campaign_id: str) -> None:
        """Fill in the reason and campaign of the events just queued for ``lst``."""
        for _url, _event, form in self._outgoing:
            if ("data[list_id]", lst.id) not in form:
                continue
            for i, (k, _v) in enumerate(form):
                if k == "data[reason]":
                    form[i] = (k, reason)
            if campaign_id:
                form.append(("data[campaign_id]", campaign_id))

    def flush_webhooks(self) -> None:
        """Start delivering the webhook events queued by the last changes (the API calls this)."""
        with self._lock:
            outgoing, self._outgoing = self._outgoing, []
            if not self.deliver_webhooks or not outgoing:
                return
            thread = threading.Thread(
                target=self._deliver, args=(outgoing,), name="mailchimp-webhooks", daemon=True
            )
            # Started before it is listed: wait_for_webhooks() may join any listed thread,
            # and joining one not yet started raises RuntimeError.
            thread.start()
            self._webhook_threads.append(thread)

    def _deliver(self, outgoing: list[tuple[str, str, list[tuple[str, str]]]]) -> None:
        for url, event, form in outgoing:
            status: int | None = None
            error: str | None = None
            try:
                response = requests.post(
                    url,
                    data=form,
                    headers={"User-Agent": "MailChimp"},
                    timeout=10,
                )
                status = response.status_code
            except requests.RequestException as exc:
                error = type(exc).__name__
            with self._lock:
                self._deliveries.append(WebhookDelivery(url, event, tuple(form), status, error))

    def wait_for_webhooks(self, timeout: float = 10.0) -> list[WebhookDelivery]:
        """Wait for webhook deliveries in progress; returns every delivery so far."""
        with self._lock:
            threads, self._webhook_threads = self._webhook_threads, []
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.webhook_deliveries()

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        with self._lock:
            return list(self._deliveries)

    # ----------------------------------------------------------------- campaigns

    def create_campaign(self, body: Any, base: str) -> dict[str, Any]:
        body = _require_object(body)
        if "type" not in body:
            raise problems.required_fields("type")
        if body["type"] not in CAMPAIGN_TYPES:
            message = (
                "Data presented is not one of the accepted values: "
                + ", ".join(CAMPAIGN_TYPES)
                + "."
            )
            raise problems.invalid_resource(errors=[{"field": "type", "message": message}])
        with self._lock:
            campaign = _Campaign(
                id=self._unused_campaign_id(),
                web_id=_web_id(),
                type=body["type"],
                created=self.clock(),
            )
            self._apply_campaign(campaign, body)
            self._campaigns[campaign.id] = campaign
            return self._campaign_json(campaign, base)

    def _unused_campaign_id(self) -> str:
        while True:
            candidate = _new_id()
            if candidate not in self._campaigns:
                return candidate

    def _apply_campaign(self, campaign: _Campaign, body: Mapping[str, Any]) -> None:
        recipients = body.get("recipients")
        if recipients is not None:
            if not isinstance(recipients, dict):
                raise problems.schema_mismatch(
                    "recipients", "object", problems.type_name(recipients)
                )
            if "list_id" not in recipients:
                raise problems.invalid_resource(
                    errors=[
                        {
                            "field": "recipients",
                            "message": "Required fields were not provided: list_id",
                        }
                    ]
                )
            if recipients["list_id"] not in self._lists:
                raise problems.invalid_resource(
                    errors=[
                        {
                            "field": "recipients.list_id",
                            "message": "The requested list_id does not exist.",
                        }
                    ]
                )
            campaign.list_id = recipients["list_id"]
            if isinstance(recipients.get("segment_opts"), dict):
                campaign.segment_opts = dict(recipients["segment_opts"])
        for name in ("settings", "tracking"):
            given = body.get(name)
            if given is None:
                continue
            if not isinstance(given, dict):
                raise problems.schema_mismatch(name, "object", problems.type_name(given))
            for key, value in given.items():
                if key in ("subject_line", "title", "from_name", "reply_to", "preview_text") and (
                    not isinstance(value, str)
                ):
                    raise problems.schema_mismatch(
                        f"{name}.{key}", "string", problems.type_name(value)
                    )
        campaign.settings = _camp_settings({**campaign.settings, **(body.get("settings") or {})})
        campaign.tracking = _camp_tracking({**campaign.tracking, **(body.get("tracking") or {})})

    def _campaign(self, campaign_id: str) -> _Campaign:
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            raise problems.not_found()
        self._advance(campaign)
        return campaign

    def _advance(self, campaign: _Campaign) -> None:
        now = self.clock()
        when = campaign.send_time
        if campaign.status == "schedule" and when is not None and when <= now:
            self._start_sending(campaign, when)
        if campaign.status == "sending" and (campaign.sending_until or 0.0) <= now:
            campaign.status = "sent"

    def _recipient_count(self, campaign: _Campaign) -> int:
        if campaign.recipient_count is not None:
            return campaign.recipient_count
        lst = self._lists.get(campaign.list_id)
        return lst.counts["subscribed"] if lst is not None else 0

    def _start_sending(self, campaign: _Campaign, when: float) -> None:
        lst = self._lists.get(campaign.list_id)
        count = self._recipient_count(campaign)
        campaign.recipient_count = count
        campaign.emails_sent = count
        campaign.send_time = when
        campaign.status = "sending"
        campaign.sending_until = when + self.send_seconds
        if lst is not None:
            lst.campaign_count += 1
            lst.campaign_last_sent = when
        settings = campaign.settings
        self._sent.append(
            SentCampaign(
                id=campaign.id,
                title=str(settings.get("title", "")),
                subject_line=str(settings.get("subject_line", "")),
                from_name=str(settings.get("from_name", "")),
                reply_to=str(settings.get("reply_to", "")),
                list_id=campaign.list_id,
                list_name=lst.name if lst is not None else "",
                html=campaign.html,
                plain_text=campaign.plain_text,
                recipient_count=count,
                send_time=iso(when),
            )
        )

    def get_campaign(self, campaign_id: str, base: str) -> dict[str, Any]:
        with self._lock:
            return self._campaign_json(self._campaign(campaign_id), base)

    def list_campaigns(
        self,
        base: str,
        *,
        count: int = 10,
        offset: int = 0,
        status: str | None = None,
        list_id: str | None = None,
        type_: str | None = None,
        sort_field: str | None = None,
        sort_dir: str = "ASC",
    ) -> dict[str, Any]:
        with self._lock:
            campaigns = list(self._campaigns.values())
            for campaign in campaigns:
                self._advance(campaign)
            if status is not None:
                campaigns = [c for c in campaigns if c.status == status]
            if list_id is not None:
                campaigns = [c for c in campaigns if c.list_id == list_id]
            if type_ is not None:
                campaigns = [c for c in campaigns if c.type == type_]
            if sort_field == "send_time":
                campaigns.sort(key=lambda c: c.send_time or 0.0)
            elif sort_field == "create_time":
                campaigns.sort(key=lambda c: c.created)
            if sort_dir.upper() == "DESC":
                campaigns.reverse()
            page = campaigns[offset : offset + count]
            return {
                "campaigns": [self._campaign_json(c, base) for c in page],
                "total_items": len(campaigns),
                "_links": _collection_links(f"{base}/campaigns"),
            }

    def update_campaign(self, campaign_id: str, body: Any, base: str) -> dict[str, Any]:
        body = _require_object(body)
        with self._lock:
            campaign = self._campaign(campaign_id)
            self._require_editable(campaign)
            self._apply_campaign(campaign, body)
            return self._campaign_json(campaign, base)

    @staticmethod
    def _require_editable(campaign: _Campaign) -> None:
        if campaign.status in ("sending", "sent", "canceling", "canceled"):
            raise MailchimpProblem(
                400, "Bad Request", "This campaign cannot be updated because it has been sent."
            )
        if campaign.status == "schedule":
            raise MailchimpProblem(
                400,
                "Bad Request",
                "This campaign is scheduled. Unschedule it before making changes.",
            )

    def delete_campaign(self, campaign_id: str) -> None:
        with self._lock:
            self._campaign(campaign_id)
            del self._campaigns[campaign_id]

    def set_content(self, campaign_id: str, body: Any, base: str) -> dict[str, Any]:
        body = _require_object(body)
        with self._lock:
            campaign = self._campaign(campaign_id)
            self._require_editable(campaign)
            html = body.get("html")
            plain = body.get("plain_text")
            template = body.get("template")
            if html is not None and not isinstance(html, str):
                raise problems.schema_mismatch("html", "string", problems.type_name(html))
            if plain is not None and not isinstance(plain, str):
                raise problems.schema_mismatch("plain_text", "string", problems.type_name(plain))
            if isinstance(template, dict):
                sections = template.get("sections") or {}
                html = "".join(
                    f'<div mc:edit="{html_lib.escape(str(k))}">{v}</div>'
                    for k, v in sections.items()
                )
            elif html is None and plain is None and body.get("url") is None:
                raise problems.required_fields("html")
            if html is not None:
                campaign.html = html
                campaign.plain_text = plain if plain is not None else html_to_text(html)
            elif plain is not None:
                campaign.plain_text = plain
                if campaign.type == "plaintext":
                    campaign.html = ""
            elif isinstance(body.get("url"), str):
                campaign.html = f"<!-- imported from {html_lib.escape(body['url'])} -->"
                campaign.plain_text = ""
            campaign.has_content = True
            return self._content_json(campaign, base)

    def get_content(self, campaign_id: str, base: str) -> dict[str, Any]:
        with self._lock:
            return self._content_json(self._campaign(campaign_id), base)

    @staticmethod
    def _content_json(campaign: _Campaign, base: str) -> dict[str, Any]:
        data: dict[str, Any] = {"plain_text": campaign.plain_text}
        if campaign.type != "plaintext":
            data["html"] = campaign.html
            data["archive_html"] = campaign.html
        data["_links"] = [
            {
                "rel": "self",
                "href": f"{base}/campaigns/{campaign.id}/content",
                "method": "GET",
            }
        ]
        return data

    def _checklist(self, campaign: _Campaign) -> list[dict[str, Any]]:
        items: list[tuple[str, str, str]] = []
        settings = campaign.settings
        lst = self._lists.get(campaign.list_id)
        if campaign.status in ("sent", "sending"):
            items.append(("error", "Campaign", "This campaign has already been sent."))
        if lst is None:
            items.append(("error", "Audience", "You need to choose an audience to send to."))
        elif self._recipient_count(campaign) == 0:
            items.append(("error", "Audience", f'Your segment of list "{lst.name}" is empty.'))
        else:
            count = self._recipient_count(campaign)
            items.append(("success", "Audience", f"{count} recipients in {lst.name}."))
        for key, heading in (
            ("subject_line", "Subject line"),
            ("from_name", "From name"),
            ("reply_to", "From email address"),
        ):
            if str(settings.get(key) or "").strip():
                items.append(("success", heading, f"The {heading.lower()} is set."))
            else:
                items.append(("error", heading, f"You need to add a {heading.lower()}."))
        content = campaign.plain_text if campaign.type == "plaintext" else campaign.html
        if not campaign.has_content or not content.strip():
            items.append(("error", "Content", "You need to add content to your campaign."))
        elif UNSUB_TAG not in content:
            items.append(
                (
                    "error",
                    "Unsubscribe link",
                    f"Your campaign content must include the {UNSUB_TAG} merge tag.",
                )
            )
        else:
            items.append(("success", "Content", "Your campaign has content."))
        return [
            {"type": kind, "id": number, "heading": heading, "details": details}
            for number, (kind, heading, details) in enumerate(items, start=1)
        ]

    def send_checklist(self, campaign_id: str, base: str) -> dict[str, Any]:
        with self._lock:
            campaign = self._campaign(campaign_id)
            items = self._checklist(campaign)
            return {
                "is_ready": all(i["type"] != "error" for i in items),
                "items": items,
                "_links": [
                    {
                        "rel": "parent",
                        "href": f"{base}/campaigns/{campaign.id}",
                        "method": "GET",
                    }
                ],
            }

    def _require_ready(self, campaign: _Campaign) -> None:
        if any(i["type"] == "error" for i in self._checklist(campaign)):
            raise MailchimpProblem(400, "Bad Request", "Your Campaign is not ready to send.")

    def send_campaign(self, campaign_id: str) -> None:
        """POST …/actions/send: ``sending`` now, ``sent`` after ``send_seconds``."""
        with self._lock:
            campaign = self._campaign(campaign_id)
            if campaign.status == "schedule":
                raise MailchimpProblem(
                    400,
                    "Bad Request",
                    "This campaign is scheduled. Unschedule it before sending it now.",
                )
            self._require_ready(campaign)
            self._start_sending(campaign, self.clock())
            self._advance(campaign)

    def schedule_campaign(self, campaign_id: str, body: Any) -> None:
        body = _require_object(body)
        if "schedule_time" not in body:
            raise problems.required_fields("schedule_time")
        value = body["schedule_time"]
        if not isinstance(value, str):
            raise problems.schema_mismatch("schedule_time", "string", problems.type_name(value))
        try:
            when = parse_time(value)
        except ValueError:
            raise problems.invalid_resource(
                errors=[
                    {
                        "field": "schedule_time",
                        "message": "This value should be a valid ISO 8601 date and time.",
                    }
                ]
            ) from None
        with self._lock:
            campaign = self._campaign(campaign_id)
            if campaign.status not in ("save", "paused"):
                raise MailchimpProblem(
                    400, "Bad Request", "This campaign cannot be scheduled in its current state."
                )
            moment = time.gmtime(when)
            if moment.tm_min % 15 or moment.tm_sec or when != int(when):
                raise problems.invalid_resource(
                    "Schedule time must be on the quarter-hour (:00, :15, :30, :45)."
                )
            if when <= self.clock():
                raise problems.invalid_resource("Schedule time must be in the future.")
            self._require_ready(campaign)
            campaign.status = "schedule"
            campaign.send_time = when

    def unschedule_campaign(self, campaign_id: str) -> None:
        with self._lock:
            campaign = self._campaign(campaign_id)
            if campaign.status != "schedule":
                raise MailchimpProblem(
                    400, "Bad Request", "Cannot unschedule a campaign that is not scheduled."
                )
            campaign.status = "save"
            campaign.send_time = None

    def _campaign_json(self, campaign: _Campaign, base: str) -> dict[str, Any]:
        lst = self._lists.get(campaign.list_id)
        recipients: dict[str, Any] = {
            "list_id": campaign.list_id,
            "list_is_active": lst is not None,
            "list_name": lst.name if lst is not None else "",
            "segment_text": "",
            "recipient_count": self._recipient_count(campaign),
        }
        if campaign.segment_opts is not None:
            recipients["segment_opts"] = dict(campaign.segment_opts)
        href = f"{base}/campaigns/{campaign.id}"
        return {
            "id": campaign.id,
            "web_id": campaign.web_id,
            "type": campaign.type,
            "create_time": iso(campaign.created),
            "archive_url": f"http://eepurl.com/{campaign.id[:6]}",
            "long_archive_url": f"https://us5.campaign-archive.com/?id={campaign.id}",
            "status": campaign.status,
            "emails_sent": campaign.emails_sent,
            "send_time": iso(campaign.send_time),
            "content_type": "html" if campaign.type != "plaintext" else "plaintext",
            "needs_block_refresh": False,
            "resendable": False,
            "recipients": recipients,
            "settings": dict(campaign.settings),
            "tracking": dict(campaign.tracking),
            "delivery_status": {"enabled": False},
            "_links": [
                {"rel": "self", "href": href, "method": "GET"},
                {"rel": "parent", "href": f"{base}/campaigns", "method": "GET"},
                {"rel": "update", "href": href, "method": "PATCH"},
                {"rel": "delete", "href": href, "method": "DELETE"},
                {"rel": "content", "href": f"{href}/content", "method": "GET"},
                {"rel": "send_checklist", "href": f"{href}/send-checklist", "method": "GET"},
            ],
        }

    # ----------------------------------------------------------------- batches

    def start_batch(
        self, body: Any, base: str, *, root: str, dispatch: BatchDispatch
    ) -> dict[str, Any]:
        """POST /batches: check the operations, queue the batch and answer ``pending``.

        A worker thread runs queued batches one at a time (as Mailchimp does): once a batch
        is due to start (half of ``batch_seconds`` after submission; at once when 0) each
        operation goes through ``dispatch`` (the API itself, as the submitter, so errors are
        the same problem documents), then the results are packed into a tar.gz of JSON files
        served at ``{root}/_sandbox/mailchimp/batches/{id}.tar.gz`` once it shows
        ``finished``. Operations take none of the key's connection slots.
        """
        operations = _parse_operations(body)
        with self._lock:
            batch = _Batch(
                id=self._unused_batch_id(),
                operations=operations,
                dispatch=dispatch,
                root=root.rstrip("/"),
                submitted=self.clock(),
                seconds=max(0.0, float(self.batch_seconds)),
            )
            self._batches[batch.id] = batch
            data = self._batch_json(batch, base)
            data["status"] = "pending"  # Mailchimp's answer to the POST, however fast it runs
            self._wake_batch_worker()
            return data

    def get_batch(self, batch_id: str, base: str) -> dict[str, Any]:
        with self._lock:
            return self._batch_json(self._batch(batch_id), base)

    def get_batches(self, base: str, *, count: int = 10, offset: int = 0) -> dict[str, Any]:
        with self._lock:
            batches = list(self._batches.values())
            return {
                "batches": [self._batch_json(b, base) for b in batches[offset : offset + count]],
                "total_items": len(batches),
                "_links": _collection_links(f"{base}/batches"),
            }

    def delete_batch(self, batch_id: str) -> None:
        """DELETE /batches/{id}: stops it if it is running; its results are gone."""
        with self._lock:
            self._batch(batch_id)
            del self._batches[batch_id]

    def batch_archive(self, batch_id: str) -> bytes | None:
        """The results tar.gz of a batch that shows ``finished`` (None otherwise)."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None or self._batch_stage(batch, self.clock()) != _FINISHED:
                return None
            return batch.archive

    def close(self) -> None:
        """Stop the batch worker (no batch runs afterwards)."""
        with self._lock:
            self._closed = True
            self._batch_wake.set()
            worker = self._batch_worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=2)

    def _batch(self, batch_id: str) -> _Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise problems.not_found()
        return batch

    def _unused_batch_id(self) -> str:
        while True:
            candidate = _new_id()
            if candidate not in self._batches:
                return candidate

    @staticmethod
    def _time_stage(batch: _Batch, now: float) -> int:
        """Where the clock alone puts the batch: a quarter of ``seconds`` per step."""
        if batch.seconds <= 0:
            return _FINISHED
        elapsed = now - batch.submitted
        return max(_PENDING, min(_FINISHED, int(4 * elapsed / batch.seconds)))

    def _batch_stage(self, batch: _Batch, now: float) -> int:
        """The status shown: the clock's step, held at ``started`` while operations run."""
        by_time = self._time_stage(batch, now)
        if not batch.claimed:
            return min(by_time, _PREPROCESSING)
        if batch.archive is None:
            return _STARTED
        return max(by_time, _STARTED)

    def _batch_json(self, batch: _Batch, base: str) -> dict[str, Any]:
        stage = self._batch_stage(batch, self.clock())
        finished = stage == _FINISHED
        completed = max(batch.done_at or 0.0, batch.submitted + batch.seconds)
        href = f"{base}/batches/{batch.id}"
        return {
            "id": batch.id,
            "status": BATCH_STATUSES[stage],
            "total_operations": len(batch.operations),
            "finished_operations": batch.finished,
            "errored_operations": batch.errored,
            "submitted_at": iso(batch.submitted),
            "completed_at": iso(completed) if finished else "",
            "response_body_url": (
                f"{batch.root}/_sandbox/mailchimp/batches/{batch.id}.tar.gz" if finished else ""
            ),
            "_links": [
                {"rel": "parent", "href": f"{base}/batches", "method": "GET"},
                {"rel": "self", "href": href, "method": "GET"},
                {"rel": "delete", "href": href, "method": "DELETE"},
            ],
        }

    def _wake_batch_worker(self) -> None:
        self._batch_wake.set()
        if self._batch_worker is None and not self._closed:
            self._batch_worker = threading.Thread(
                target=self._batch_loop, name="mailchimp-batches", daemon=True
            )
            self._batch_worker.start()

    def _batch_loop(self) -> None:
        """The worker: start due batches one at a time; announce finished ones; exit idle."""
        while True:
            job: _Batch | None = None
            waiting = False
            with self._lock:
                self._batch_wake.clear()
                now = self.clock()
                for batch in self._batches.values():
                    stage = self._time_stage(batch, now)
                    if not batch.claimed:
                        if job is None and stage >= _STARTED:
                            job = batch
                        else:
                            waiting = True
                    elif batch.archive is not None and not batch.announced:
                        if stage == _FINISHED:
                            batch.announced = True
                            self._queue_batch_webhooks(batch)
                        else:
                            waiting = True
                stop = self._closed or (job is None and not waiting)
                if job is not None and not self._closed:
                    job.claimed = True
                if stop:
                    self._batch_worker = None
            self.flush_webhooks()
            if stop:
                return
            if job is not None:
                self._run_batch(job)
            else:
                # The clock may be the test's own: look again often rather than sleep to a time.
                self._batch_wake.wait(0.05)

    def _run_batch(self, batch: _Batch) -> None:
        for operation in batch.operations:
            with self._lock:
                if self._closed or self._batches.get(batch.id) is not batch:
                    return  # deleted (Mailchimp's DELETE stops a running batch) or reset
            try:
                status, text = batch.dispatch(operation)
            except Exception:  # the dispatcher answers errors itself; a last guard
                status = 500
                text = json.dumps(
                    problems.internal_error().body(str(uuid.uuid4())), separators=(",", ":")
                )
            with self._lock:
                batch.results.append(
                    {
                        "status_code": status,
                        "operation_id": operation.operation_id,
                        "response": text,
                    }
                )
                batch.finished += 1
                if status >= 400:
                    batch.errored += 1
        with self._lock:
            results, batch.results = batch.results, []
            per_file = max(1, int(self.batch_file_size))
            mtime = self.clock()
        archive = _results_archive(batch.id, results, per_file, mtime)
        with self._lock:
            batch.archive = archive
            batch.done_at = self.clock()

    def _queue_batch_webhooks(self, batch: _Batch) -> None:
        """The batch webhook POST (form-encoded, like list webhooks) to each enabled one.

        Only ``data[response_body_url]`` is confirmed; the other keys follow the batch's
        fields and ``type`` is from memory of Mailchimp's docs (unverified).
        """
        hooks = [h for h in self._batch_webhooks.values() if h["enabled"]]
        if not hooks:
            return
        data = self._batch_json(batch, "")
        form: list[tuple[str, str]] = [
            ("type", "batch_operation_completed"),
            ("fired_at", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.clock()))),
        ]
        for key in (
            "id",
            "status",
            "total_operations",
            "finished_operations",
            "errored_operations",
            "submitted_at",
            "completed_at",
            "response_body_url",
        ):
            form.append((f"data[{key}]", str(data[key])))
        for hook in hooks:
            self._outgoing.append((hook["url"], "batch_operation_completed", list(form)))

    # ----------------------------------------------------------------- batch webhooks

    def create_batch_webhook(self, body: Any, base: str) -> dict[str, Any]:
        """POST /batch-webhooks ``{url, enabled}``: at most 20."""
        body = _require_object(body)
        if body.get("url") is None:
            raise problems.required_fields("url")
        url = _require_url(body["url"])
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise problems.schema_mismatch("enabled", "boolean", problems.type_name(enabled))
        with self._lock:
            if len(self._batch_webhooks) >= MAX_BATCH_WEBHOOKS:
                # Mailchimp refuses a 21st; its exact wording is unverified.
                raise problems.invalid_resource(
                    f"You may only have {MAX_BATCH_WEBHOOKS} batch webhooks."
                )
            hook_id = _new_id()
            while hook_id in self._batch_webhooks:
                hook_id = _new_id()
            self._batch_webhooks[hook_id] = {"id": hook_id, "url": url, "enabled": enabled}
            return self._batch_webhook_json(self._batch_webhooks[hook_id], base)

    def get_batch_webhooks(self, base: str) -> dict[str, Any]:
        with self._lock:
            hooks = [self._batch_webhook_json(h, base) for h in self._batch_webhooks.values()]
            return {
                "webhooks": hooks,
                "total_items": len(hooks),
                "_links": _collection_links(f"{base}/batch-webhooks"),
            }

    def get_batch_webhook(self, hook_id: str, base: str) -> dict[str, Any]:
        with self._lock:
            return self._batch_webhook_json(self._batch_webhook(hook_id), base)

    def update_batch_webhook(self, hook_id: str, body: Any, base: str) -> dict[str, Any]:
        body = _require_object(body)
        url = _require_url(body["url"]) if body.get("url") is not None else None
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise problems.schema_mismatch("enabled", "boolean", problems.type_name(enabled))
        with self._lock:
            hook = self._batch_webhook(hook_id)
            if url is not None:
                hook["url"] = url
            if enabled is not None:
                hook["enabled"] = enabled
            return self._batch_webhook_json(hook, base)

    def delete_batch_webhook(self, hook_id: str) -> None:
        with self._lock:
            self._batch_webhook(hook_id)
            del self._batch_webhooks[hook_id]

    def _batch_webhook(self, hook_id: str) -> dict[str, Any]:
        hook = self._batch_webhooks.get(hook_id)
        if hook is None:
            raise problems.not_found()
        return hook

    @staticmethod
    def _batch_webhook_json(hook: Mapping[str, Any], base: str) -> dict[str, Any]:
        href = f"{base}/batch-webhooks/{hook['id']}"
        return {
            "id": hook["id"],
            "url": hook["url"],
            "enabled": hook["enabled"],
            "_links": [
                {"rel": "self", "href": href, "method": "GET"},
                {"rel": "parent", "href": f"{base}/batch-webhooks", "method": "GET"},
                {"rel": "update", "href": href, "method": "PATCH"},
                {"rel": "delete", "href": href, "method": "DELETE"},
            ],
        }

    # ----------------------------------------------------------------- read helpers (outbox)

    def lists(self) -> list[dict[str, Any]]:
        """Every audience as the API shows it (with ``stats.total_contacts``)."""
        with self._lock:
            return [self._list_json(lst, "", include_total=True) for lst in self._lists.values()]

    def members(
        self, list_id: str, *, status: str | None = None, offset: int = 0, count: int | None = None
    ) -> list[dict[str, Any]]:
        """Members of an audience as the API shows them; all statuses unless ``status``."""
        with self._lock:
            lst = self._lists.get(list_id)
            if lst is None:
                raise KeyError(list_id)
            chosen = [m for m in lst.members.values() if status is None or m.status == status]
            end = None if count is None else offset + count
            return [self._member_json(lst, m, "") for m in chosen[offset:end]]

    def member_count(self, list_id: str, status: str | None = None) -> int:
        with self._lock:
            lst = self._lists.get(list_id)
            if lst is None:
                raise KeyError(list_id)
            return len(lst.members) if status is None else lst.counts[status]

    def campaigns(self) -> list[dict[str, Any]]:
        with self._lock:
            for campaign in self._campaigns.values():
                self._advance(campaign)
            return [self._campaign_json(c, "") for c in self._campaigns.values()]

    def sent_campaigns(self) -> list[SentCampaign]:
        """Campaigns sent (or whose schedule has passed), oldest first."""
        with self._lock:
            for campaign in self._campaigns.values():
                self._advance(campaign)
            return list(self._sent)


def _merge(m: _Member) -> dict[str, Any]:
    merge: dict[str, Any] = dict.fromkeys(DEFAULT_MERGE_FIELDS, "")
    if m.merge_fields:
        merge.update(m.merge_fields)
    return merge


def _full_name(m: _Member) -> str:
    merge = _merge(m)
    return " ".join(str(p) for p in (merge.get("FNAME", ""), merge.get("LNAME", "")) if p)


def _tags(lst: _List, m: _Member) -> list[dict[str, Any]]:
    return [{"id": lst.tag_ids[name], "name": name} for name in m.tags] if m.tags else []


_MemberPart = Callable[[_List, _Member, str], Any]

#: Each top-level key of the member object, in the full object's order, for ``fields``.
_MEMBER_PARTS: dict[str, _MemberPart] = {
    "id": lambda lst, m, base: m.hash,
    "email_address": lambda lst, m, base: m.email,
    "unique_email_id": lambda lst, m, base: MailchimpState._unique_email_id(lst, m),
    "contact_id": lambda lst, m, base: hashlib.md5(
        f"contact:{m.hash}".encode(), usedforsecurity=False
    ).hexdigest(),
    "full_name": lambda lst, m, base: _full_name(m),
    "web_id": lambda lst, m, base: 100_000_000 + m.seq,
    "email_type": lambda lst, m, base: m.email_type,
    "status": lambda lst, m, base: m.status,
    "consents_to_one_to_one_messaging": lambda lst, m, base: True,
    "merge_fields": lambda lst, m, base: _merge(m),
    "stats": lambda lst, m, base: {"avg_open_rate": 0, "avg_click_rate": 0},
    "ip_signup": lambda lst, m, base: m.ip_signup,
    "timestamp_signup": lambda lst, m, base: iso(m.signup),
    "ip_opt": lambda lst, m, base: m.ip_opt,
    "timestamp_opt": lambda lst, m, base: iso(m.opt),
    "member_rating": lambda lst, m, base: 2,
    "last_changed": lambda lst, m, base: iso(m.changed),
    "language": lambda lst, m, base: m.language,
    "vip": lambda lst, m, base: m.vip,
    "email_client": lambda lst, m, base: "",
    "location": lambda lst, m, base: {
        "latitude": 0,
        "longitude": 0,
        "gmtoff": 0,
        "dstoff": 0,
        "country_code": "",
        "timezone": "",
    },
    "source": lambda lst, m, base: "API - Generic",
    "tags_count": lambda lst, m, base: len(m.tags or ()),
    "tags": lambda lst, m, base: _tags(lst, m),
    "list_id": lambda lst, m, base: lst.id,
    "_links": lambda lst, m, base: _member_links(lst, m, base),
    "unsubscribe_reason": lambda lst, m, base: m.unsubscribe_reason,
}


def _member_links(lst: _List, m: _Member, base: str) -> list[dict[str, str]]:
    href = f"{base}/lists/{lst.id}/members/{m.hash}"
    return [
        {"rel": "self", "href": href, "method": "GET"},
        {"rel": "parent", "href": f"{base}/lists/{lst.id}/members", "method": "GET"},
        {"rel": "update", "href": href, "method": "PATCH"},
        {"rel": "upsert", "href": href, "method": "PUT"},
        {"rel": "delete", "href": href, "method": "DELETE"},
    ]


def _schema_error(field_name: str, expected: str, value: Any) -> dict[str, str]:
    return {
        "field": field_name,
        "message": f"Schema describes {expected}, {problems.type_name(value)} found instead",
    }


def _collection_links(href: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": href, "method": "GET"}]
