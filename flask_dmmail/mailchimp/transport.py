"""How requests reach Mailchimp: one ``mailchimp-marketing`` client per thread, at most
:data:`MAX_CONNECTIONS` requests in flight per API key, retries of transient failures, and the
mapping of every failure to a :class:`~flask_dmmail.errors.MailchimpError` with the addresses
scrubbed out of its message (:func:`map_error`, :func:`scrub`). :class:`Transport` is the base
of :class:`~flask_dmmail.mailchimp.Audiences`.

What this module does about the client's quirks (see the reference notes):

* the client's host is fixed and it rewrites ``"server"`` anywhere in the URL, so the host is
  set on ``client.api_client.host`` after construction and the client's ``server`` is set to
  ``"server"``, which makes that rewrite a no-op for any host;
* ``ApiClientError.text`` is a raw JSON string (or a requests exception when there was no
  answer, ``status_code=None``); an empty or non-JSON body makes the client *return* the
  ``requests.Response``, even for an error, so every call is checked for that;
* ``fields`` always goes as a list (a string is joined character by character);
* the client has no Session and no retries: timeouts, dropped connections, 5xx and 429 are
  retried here with exponential backoff and full jitter (``DM_MAILCHIMP_RETRIES``), except
  for the POSTs that would create a second audience or campaign;
* Mailchimp allows 10 connections per API key: a semaphore per key, shared by every thread
  and every :class:`~flask_dmmail.mailchimp.Audiences` of this process, keeps at most 10
  requests in flight;
* each thread gets its own client object (the client mutates its config on every call);
* the client (32 modules) is imported when the first one is built, not with this package;
* a key works only in its own data centre (its ``-us5``-style ending): a base URL on another
  data centre's host (``https://us6.api.mailchimp.com/3.0``) is refused before any request
  (:func:`check_datacenter`), where Mailchimp would answer 401 "API Key Invalid".
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import requests

from ..deadline import mailchimp_request
from ..errors import (
    ConfigurationError,
    ForgottenMemberError,
    InvalidMemberAddressError,
    MailchimpAuthError,
    MailchimpBadRequestError,
    MailchimpError,
    MailchimpForbiddenError,
    MailchimpNotFoundError,
    MailchimpProtocolError,
    MailchimpRateLimitError,
    MailchimpUnavailableError,
    MailchimpValidationError,
    MemberComplianceError,
    MemberExistsError,
)
from ..redaction import redact
from ..retry import backoff_delay

logger = logging.getLogger("flask_dmmail")

#: Requests one API key may have in flight (Mailchimp answers 429 past it).
MAX_CONNECTIONS: Final = 10
#: Members per page when walking an audience (Mailchimp's maximum).
PAGE_SIZE: Final = 1000
#: A run of the characters an address is made of (one "@" inside makes it address-like).
_TOKEN = re.compile(r"[^\s<>\"'(),;:\[\]]+")
_T = TypeVar("_T")
#: Mailchimp's API host of one data centre (``us5.api.mailchimp.com``).
_MAILCHIMP_HOST = re.compile(r"^([a-z]+[0-9]+)\.api\.mailchimp\.com$")


def check_datacenter(api_key: str, base_url: str) -> None:
    """Refuse a Mailchimp ``base_url`` on another data centre than ``api_key``'s ``-us5``-style
    ending names (ConfigurationError): the key would be refused there. Other hosts (the
    sandbox, a proxy) are not checked."""
    match = _MAILCHIMP_HOST.match((urlsplit(base_url).hostname or "").lower())
    _, dash, key_dc = api_key.rpartition("-")
    if match is not None and dash and key_dc != match.group(1):
        raise ConfigurationError(
            "DM_MAILCHIMP_BASE_URL",
            f"is on Mailchimp's data centre {match.group(1)!r}, but DM_MAILCHIMP_API_KEY "
            f"belongs to {key_dc!r} (its ending), and Mailchimp refuses a key anywhere else. "
            f"Use https://{key_dc}.api.mailchimp.com/3.0, or leave DM_MAILCHIMP_BASE_URL unset "
            "to have it follow the key.",
        )


def subscriber_hash(email: str) -> str:
    """Mailchimp's id of a member: md5 of the lower-cased address (not a secret: never log it)."""
    return hashlib.md5(email.lower().encode("utf-8"), usedforsecurity=False).hexdigest()


def scrub(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with ``known`` addresses (compared case-insensitively) and anything that looks
    like an address replaced by ``<address>`` (Mailchimp's error details quote the address).
    Linear in the sizes of ``text`` and ``known`` (see ``flask_dmmail.redaction``)."""
    return _TOKEN.sub(_address_like, redact(text, known, "<address>"))


def _address_like(match: re.Match[str]) -> str:
    # A run of address characters with an "@" that has something on both sides: what
    # ``[^delimiters]+@[^delimiters]+`` would match, found without backtracking.
    token = match.group()
    return "<address>" if "@" in token[1:-1] else token


def _problem(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    if isinstance(text, str | bytes):
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {}


def map_error(
    status: int | None,
    problem: Mapping[str, Any],
    *,
    cause: object = None,
    known: Iterable[str] = (),
) -> MailchimpError:
    """The typed error for a Mailchimp answer (``status`` None: there was no answer).

    ``problem`` is Mailchimp's problem document (``title``, ``detail``, ``errors``), ``cause``
    what the client raised when there was no answer, and ``known`` the addresses to scrub from
    the message (besides anything that looks like an address)."""
    known = tuple(known)
    if status is None:
        if isinstance(cause, requests.Timeout):
            what = "did not answer in time"
        else:
            what = "could not be reached"
        return MailchimpUnavailableError(
            f"Mailchimp {what} ({type(cause).__name__}); try again later.", status=None
        )
    title = str(problem.get("title") or "").strip() or None
    raw_detail = str(problem.get("detail") or "")
    detail = scrub(raw_detail, known).strip() or None
    errors = [
        {
            "field": scrub(str(e.get("field") or ""), known),
            "message": scrub(str(e.get("message") or ""), known),
        }
        for e in problem.get("errors") or ()
        if isinstance(e, Mapping)
    ]
    cls: type[MailchimpError]
    if status == 400 and title == "Member Exists":
        cls = MemberExistsError
    elif status == 400 and title == "Member In Compliance State":
        cls = MemberComplianceError
    elif status == 400 and title == "Forgotten Email Not Subscribed":
        cls = ForgottenMemberError
    elif status == 400 and title == "Invalid Resource":
        lowered = raw_detail.lower()
        if "looks fake or invalid" in lowered or "provide a valid email address" in lowered:
            cls = InvalidMemberAddressError
        else:
            cls = MailchimpValidationError
    elif status == 401 or (
        status == 403 and title in ("User Disabled", "Wrong Datacenter", "API Key Invalid")
    ):
        cls = MailchimpAuthError
    elif status == 403:
        cls = MailchimpForbiddenError
    elif status == 404:
        cls = MailchimpNotFoundError
    elif status == 429:
        cls = MailchimpRateLimitError
    elif status >= 500:
        cls = MailchimpUnavailableError
    elif 400 <= status < 500:
        cls = MailchimpBadRequestError
    else:
        cls = MailchimpProtocolError
    heading = f"{status} {title}" if title else str(status)
    message = f"Mailchimp refused the request ({heading})"
    if detail:
        message += f": {detail}"
    if errors:
        message += " [" + "; ".join(f"{e['field'] or '-'}: {e['message']}" for e in errors) + "]"
    if cls is MailchimpAuthError:
        message += " Check DM_MAILCHIMP_API_KEY (and DM_MAILCHIMP_BASE_URL)."
    elif cls is MailchimpRateLimitError:
        message += " Too many requests in flight for this API key; try again shortly."
    return cls(message, status=status, title=title, detail=detail, errors=errors)


def _from_response(response: requests.Response, known: Iterable[str]) -> MailchimpError:
    try:
        problem = _problem(response.text)
    except Exception:  # an undecodable body
        problem = {}
    if not problem.get("title") and response.reason:
        problem = {**problem, "title": response.reason}
    return map_error(response.status_code, problem, known=known)


_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def _slots_for(api_key: str) -> threading.BoundedSemaphore:
    """The process-wide semaphore of one API key (keyed by a hash: keys are not kept)."""
    name = hashlib.sha256(api_key.encode("utf-8")).hexdigest()
    with _SLOTS_LOCK:
        slots = _SLOTS.get(name)
        if slots is None:
            slots = _SLOTS[name] = threading.BoundedSemaphore(MAX_CONNECTIONS)
        return slots


class Transport:
    """The requests of one API key to one Mailchimp base URL, from any thread.

    :param api_key: the Mailchimp API key (kept only here, never logged).
    :param base_url: the API's base URL, such as ``https://us5.api.mailchimp.com/3.0`` (on
        Mailchimp's host, the key's own data centre: ConfigurationError otherwise).
    :param timeout: the deadline of one request, in seconds.
    :param retries: how many times a transient failure is retried.
    :param backoff: the first retry's mean delay, in seconds (then doubling, with jitter).
    """

    def __init__(
        self, *, api_key: str, base_url: str, timeout: float, retries: int, backoff: float
    ) -> None:
        check_datacenter(api_key, base_url)
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._slots = _slots_for(api_key)
        self._local = threading.local()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            import mailchimp_marketing  # loaded when a client is first built, not on import

            # server="server" turns the client's url.replace("server", prefix) into a no-op.
            client = mailchimp_marketing.Client(
                {"api_key": self._api_key, "server": "server", "timeout": self.timeout}
            )
            client.api_client.host = self.base_url
            # each request through a DeadlineSession: the timeout is a total deadline
            client.api_client.request = mailchimp_request(client.api_client)
            self._local.client = client
        return client

    def _call(
        self,
        operation: str,
        request: Callable[[Any], _T],
        *,
        known: Iterable[str] = (),
        retry: bool = True,
        timeout: float | None = None,
    ) -> _T | None:
        """Run ``request(client)`` under the key's semaphore, with retries of transient
        failures. Returns its data, or None for an empty success (a 204)."""
        known = tuple(known)
        attempt = 0
        client = self._client()
        from mailchimp_marketing.api_client import ApiClientError  # loaded by _client()

        while True:
            attempt += 1
            client.api_client.timeout = timeout or self.timeout
            try:
                with self._slots:
                    result = request(client)
            except ApiClientError as exc:
                error = map_error(exc.status_code, _problem(exc.text), cause=exc.text, known=known)
            else:
                if not isinstance(result, requests.Response):
                    return result
                if result.ok:
                    return None
                error = _from_response(result, known)
            if retry and error.transient and attempt <= self.retries:
                delay = backoff_delay(attempt, self.backoff)
                logger.warning(
                    "Mailchimp %s failed with %s; retrying in %.0f ms",
                    operation,
                    type(error).__name__,
                    delay * 1000,
                    extra={"operation": operation, "attempt": attempt, "status": error.status},
                )
                time.sleep(delay)
                continue
            raise error

    def _json(
        self,
        operation: str,
        request: Callable[[Any], Any],
        *,
        known: Iterable[str] = (),
        retry: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        data = self._call(operation, request, known=known, retry=retry, timeout=timeout)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise MailchimpProtocolError(
                f"Mailchimp answered {operation} with something that is not a JSON object."
            )
        return data

    def _paged(
        self,
        operation: str,
        key: str,
        fetch: Callable[..., Any],
        *,
        known: Iterable[str] = (),
    ) -> Iterator[dict[str, Any]]:
        """Every item of an offset-paged collection (``fetch(client, offset=...)``)."""
        offset = 0
        while True:
            page = self._json(operation, partial(fetch, offset=offset), known=known)
            items = page.get(key) or []
            yield from items
            offset += len(items)
            if not items or offset >= int(page.get("total_items") or 0):
                return
