"""Who may call the sandbox's Mailchimp API, and how many of their requests may be in flight.

:class:`KeyStore` holds the account's API keys (Basic auth) and OAuth access tokens (Bearer
auth), and counts each key's requests in flight against the state's ``connection_limit``
(Mailchimp allows 10 simultaneous connections per key; past that it answers 429).
"""

from __future__ import annotations

import secrets
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import MailchimpState

__all__ = ["KeyStore"]


class KeyStore:
    """API keys, access tokens and the per-key connection count; shares the state's lock.

    Keys outlive :meth:`~flask_dmmail.sandbox.mailchimp.MailchimpState.reset`.

    :param state: the :class:`~flask_dmmail.sandbox.mailchimp.MailchimpState` it belongs to
        (its lock, ``api_key`` and ``connection_limit``).
    """

    def __init__(self, state: MailchimpState) -> None:
        self._state = state
        self._lock = state.lock
        self._in_flight: Counter[str] = Counter()
        self._keys: set[str] = {state.api_key}
        self._tokens: set[str] = set()

    def add_api_key(self, key: str | None = None) -> str:
        """Accept another API key (Basic auth); returns it. Generates one if not given."""
        with self._lock:
            key = key or f"{secrets.token_hex(16)}-us5"
            self._keys.add(key)
            return key

    def revoke_api_key(self, key: str) -> None:
        """Stop accepting ``key``."""
        with self._lock:
            self._keys.discard(key)

    def add_access_token(self, token: str | None = None) -> str:
        """Accept an OAuth access token (Bearer auth); returns it."""
        with self._lock:
            token = token or secrets.token_hex(16)
            self._tokens.add(token)
            return token

    def key_is_valid(self, key: str, *, bearer: bool = False) -> bool:
        """Whether ``key`` is an accepted API key (or, with ``bearer``, an access token)."""
        with self._lock:
            return key in self._keys or (bearer and key in self._tokens)

    def enter_request(self, key: str) -> bool:
        """Count a request in flight for ``key``; False if that would exceed the limit."""
        with self._lock:
            if self._in_flight[key] >= self._state.connection_limit:
                return False
            self._in_flight[key] += 1
            return True

    def leave_request(self, key: str) -> None:
        """Count one of ``key``'s requests as finished."""
        with self._lock:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]

    def in_flight(self, key: str) -> int:
        """How many of ``key``'s requests are in flight."""
        with self._lock:
            return self._in_flight[key]
