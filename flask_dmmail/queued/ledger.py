"""The ledger: where queued emails and their states are kept, between ``send_later`` and
the worker that sends them, and after (for ``flask dmmail status --reference``).

:class:`RedisLedger` keeps them in Redis, shared by the web processes and every worker;
:class:`MemoryLedger` in this process (testing and sandbox mode without a broker, where
``send_later`` sends at once). Both hold, per queued email (Celery's task id):

- its :class:`~flask_dmmail.queued.records.QueuedStatus` (no address, no personalisation);
- the email itself, until it is sent (a failed one is kept for inspection);
- a *lease*: which run of the task is sending it, for how long at most. A run that finds
  another's lease waits for it to end; a lease that ran out belongs to a run that died, and
  the email it was sending is looked up in Notify before it is sent again.

Celery's messages carry only the task id: no address or personalisation value reaches the
broker's messages, Celery's logs, its results or its monitoring.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..errors import QueueError
from .records import SENT, SKIPPED, QueuedStatus

if TYPE_CHECKING:
    import redis

__all__ = ["DONE_TTL", "Ledger", "MemoryLedger", "RedisLedger", "redis_client", "redis_errors"]

#: Seconds the state of a sent (or skipped) email is kept: as long as Notify keeps it.
DONE_TTL = 7 * 24 * 3600
_PREFIX = "dmmail:queued:"
_FIELDS = tuple(f.name for f in fields(QueuedStatus))
_T = TypeVar("_T")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Ledger:
    """Where queued emails and their states are kept (see the module's docstring)."""

    def add(self, status: QueuedStatus, email: str) -> None:
        """Keep a new queued email: its state and the email (as ``encode_email`` wrote it)."""
        raise NotImplementedError

    def forget(self, task_id: str) -> None:
        """Remove a queued email that could not be queued after all."""
        raise NotImplementedError

    def get(self, task_id: str) -> QueuedStatus | None:
        """The state of one queued email, or None if the ledger has none."""
        raise NotImplementedError

    def email(self, task_id: str) -> str | None:
        """The email, as ``encode_email`` wrote it; None once it was sent."""
        raise NotImplementedError

    def for_reference(self, reference: str) -> list[QueuedStatus]:
        """Every queued email with ``reference`` the ledger still has, newest first."""
        raise NotImplementedError

    def save(self, status: QueuedStatus) -> None:
        """Record a new state. A sent or skipped email's copy is dropped, and its state kept
        for :data:`DONE_TTL`; a failed one's is kept for inspection."""
        raise NotImplementedError

    def take_lease(self, task_id: str, token: str, seconds: float) -> bool:
        """Take the lease of ``task_id`` for ``seconds``; False if another run holds it."""
        raise NotImplementedError

    def lease_left(self, task_id: str) -> float:
        """Seconds until another run's lease on ``task_id`` runs out (0 when none)."""
        raise NotImplementedError

    def renew_lease(self, task_id: str, token: str, seconds: float) -> bool:
        """Extend the lease ``token`` holds to ``seconds`` from now; False if it lost it."""
        raise NotImplementedError

    def release_lease(self, task_id: str, token: str) -> None:
        """Give up the lease ``token`` holds (nothing if it holds none)."""
        raise NotImplementedError


class MemoryLedger(Ledger):
    """The ledger in this process (``send_later`` without a broker)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, QueuedStatus] = {}
        self._emails: dict[str, str] = {}
        self._leases: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"<MemoryLedger emails={len(self._states)}>"

    def add(self, status: QueuedStatus, email: str) -> None:
        with self._lock:
            self._states[status.task_id] = status
            self._emails[status.task_id] = email

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._states.pop(task_id, None)
            self._emails.pop(task_id, None)

    def get(self, task_id: str) -> QueuedStatus | None:
        with self._lock:
            return self._states.get(task_id)

    def email(self, task_id: str) -> str | None:
        with self._lock:
            return self._emails.get(task_id)

    def for_reference(self, reference: str) -> list[QueuedStatus]:
        with self._lock:
            found = [s for s in self._states.values() if s.reference == reference]
        return sorted(found, key=lambda s: s.queued_at, reverse=True)

    def save(self, status: QueuedStatus) -> None:
        with self._lock:
            self._states[status.task_id] = status
            if status.state in (SENT, SKIPPED):
                self._emails.pop(status.task_id, None)

    def take_lease(self, task_id: str, token: str, seconds: float) -> bool:
        with self._lock:
            held = self._leases.get(task_id)
            if held is not None and held[1] > time.monotonic() and held[0] != token:
                return False
            self._leases[task_id] = (token, time.monotonic() + seconds)
            return True

    def lease_left(self, task_id: str) -> float:
        with self._lock:
            held = self._leases.get(task_id)
            return max(0.0, held[1] - time.monotonic()) if held else 0.0

    def renew_lease(self, task_id: str, token: str, seconds: float) -> bool:
        with self._lock:
            held = self._leases.get(task_id)
            if held is None or held[0] != token:
                return False
            self._leases[task_id] = (token, time.monotonic() + seconds)
            return True

    def release_lease(self, task_id: str, token: str) -> None:
        with self._lock:
            held = self._leases.get(task_id)
            if held is not None and held[0] == token:
                del self._leases[task_id]


def redis_client(url: str) -> redis.Redis:
    """A Redis client for ``url`` with bounded waits (5 s), answering text."""
    import redis

    return redis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
        decode_responses=True,
    )


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Turn the Redis client's errors into :class:`~flask_dmmail.errors.QueueError`, whose
    message says ``what`` could not be done (never the URL: it may hold a password)."""
    import redis

    try:
        yield
    except redis.RedisError as error:
        raise QueueError(
            f"{what}: the Redis that keeps queued emails did not answer "
            f"({type(error).__name__}). Check that it is running and reachable "
            "(DM_MAIL_REDIS_URL, or the Celery broker's URL), then try again."
        ) from None


class RedisLedger(Ledger):
    """The ledger in Redis, shared by every process that sends or queues.

    :param client: a Redis client (see :func:`redis_client`).
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def __repr__(self) -> str:
        return "<RedisLedger>"

    @staticmethod
    def _key(task_id: str, part: str = "") -> str:
        return f"{_PREFIX}{task_id}{':' + part if part else ''}"

    @staticmethod
    def _index(reference: str) -> str:
        return f"{_PREFIX}ref:{reference}"

    def _call(self, what: str, action: Callable[[], _T]) -> _T:
        with redis_errors(what):
            return action()

    def add(self, status: QueuedStatus, email: str) -> None:
        def action() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(self._key(status.task_id), mapping=cast(Any, status.to_fields()))
            pipe.set(self._key(status.task_id, "email"), email)
            pipe.zadd(self._index(status.reference), {status.task_id: time.time()})
            pipe.execute()

        self._call("The email was not queued", action)

    def forget(self, task_id: str) -> None:
        status = self.get(task_id)

        def action() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._key(task_id), self._key(task_id, "email"))
            if status is not None:
                pipe.zrem(self._index(status.reference), task_id)
            pipe.execute()

        self._call("A queued email could not be removed", action)

    def get(self, task_id: str) -> QueuedStatus | None:
        data: dict[str, Any] = self._call(
            "The queued email's state could not be read",
            lambda: cast(Any, self.client.hgetall(self._key(task_id))),
        )
        return QueuedStatus.from_fields(data) if data else None

    def email(self, task_id: str) -> str | None:
        value: Any = self._call(
            "The queued email could not be read",
            lambda: self.client.get(self._key(task_id, "email")),
        )
        return value if isinstance(value, str) else None

    def for_reference(self, reference: str) -> list[QueuedStatus]:
        ids: list[str] = self._call(
            "The queued emails could not be read",
            lambda: cast(Any, self.client.zrange(self._index(reference), 0, -1, desc=True)),
        )
        found = [self.get(task_id) for task_id in ids]
        return [s for s in found if s is not None]

    def save(self, status: QueuedStatus) -> None:
        def action() -> None:
            pipe = self.client.pipeline(transaction=True)
            key = self._key(status.task_id)
            values = status.to_fields()
            pipe.hset(key, mapping=cast(Any, values))
            cleared = [name for name in _FIELDS if name not in values]
            if cleared:
                pipe.hdel(key, *cleared)
            if status.state in (SENT, SKIPPED):
                pipe.delete(self._key(status.task_id, "email"))
                pipe.expire(key, DONE_TTL)
                pipe.expire(self._index(status.reference), DONE_TTL, gt=True)
            pipe.execute()

        self._call("The queued email's state could not be written", action)

    def take_lease(self, task_id: str, token: str, seconds: float) -> bool:
        taken = self._call(
            "The queued email could not be taken",
            lambda: self.client.set(
                self._key(task_id, "lease"), token, nx=True, px=max(1, int(seconds * 1000))
            ),
        )
        return bool(taken)

    def lease_left(self, task_id: str) -> float:
        left: int = self._call(
            "The queued email's lease could not be read",
            lambda: self.client.pttl(self._key(task_id, "lease")),
        )
        return max(0.0, left / 1000)

    def renew_lease(self, task_id: str, token: str, seconds: float) -> bool:
        renewed = self._call(
            "The queued email's lease could not be renewed",
            lambda: self._renew(
                keys=[self._key(task_id, "lease")], args=[token, max(1, int(seconds * 1000))]
            ),
        )
        return bool(renewed)

    def release_lease(self, task_id: str, token: str) -> None:
        self._call(
            "The queued email's lease could not be released",
            lambda: self._release(keys=[self._key(task_id, "lease")], args=[token]),
        )
