"""One Notify budget for every process of a service, kept in Redis.

Notify limits a service with one token bucket per key type (:mod:`flask_dmmail.ratelimit`),
shared by every web worker, script and bulk run that uses the service's key. With
``DM_MAIL_REDIS_URL`` set, every send of the app takes its token from :class:`SharedBudget`:
one bucket in Redis per service and key type, shaped like Notify's (``DM_NOTIFY_RATE_LIMIT``
a minute, Notify's size for that rate) less a second of refill for network jitter. A Lua
script refills and takes in one atomic round trip, on Redis's clock, so every machine sees
the same bucket. A bucket Redis does not have (first use, or Redis restarted empty) starts
empty and fills at the refill rate: no burst until it has filled, never more than Notify
allows.

- **Transactional mail first.** ``Mailer.send`` (:data:`TRANSACTIONAL`) may take the last
  token; bulk work (:data:`BULK`) only takes a token while more than the reserve is left
  (``1 - DM_NOTIFY_BULK_SHARE`` of the bucket). Bulk runs still use the whole refill when
  nothing else sends, and a send from a view finds the reserve there.
- **A 429 drains it.** When Notify answers 429 anyway (another client of the service),
  :meth:`SharedBudget.drain` empties the shared bucket, so the whole fleet backs off at once.
- **Redis down.** :class:`~flask_dmmail.errors.RedisUnavailableError` once a take has
  waited for Redis longer than its kind may (:data:`SEND_OUTAGE_GRACE`,
  :data:`BULK_OUTAGE_GRACE`) when ``DM_MAIL_REDIS_REQUIRED`` is on (production's default);
  otherwise each process falls back to a local bucket of the same shape until Redis answers
  again (it is asked again every :data:`RECHECK_INTERVAL` seconds).

:class:`SharedRateLimiter` is the bulk runs' :class:`~flask_dmmail.ratelimit.RateLimiter`
over the shared budget. Nothing here ever logs the URL (it may hold a password).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, InvalidOptionError, RedisUnavailableError
from .ratelimit import RateLimiter, TokenBucket, jitter_margin, notify_bucket_size

if TYPE_CHECKING:
    import redis

__all__ = [
    "BULK",
    "BULK_OUTAGE_GRACE",
    "KEY_PREFIX",
    "RECHECK_INTERVAL",
    "SEND_OUTAGE_GRACE",
    "TRANSACTIONAL",
    "BudgetShape",
    "SharedBudget",
    "SharedRateLimiter",
    "service_id_of",
]

logger = logging.getLogger("flask_dmmail")

#: The kind of a send from the app (``Mailer.send``, the CLI, queued sends): may take the
#: last token.
TRANSACTIONAL = "transactional"
#: The kind of a bulk send: only takes tokens above the reserve.
BULK = "bulk"
#: The Redis keys: ``dmmail:notify-budget:<service id>:<key type>``.
KEY_PREFIX = "dmmail:notify-budget"
#: Seconds a transactional send waits for Redis to answer again before it gives up.
SEND_OUTAGE_GRACE = 2.0
#: Seconds a bulk run pauses for Redis to answer again before it stops (resumable).
BULK_OUTAGE_GRACE = 30.0
#: Seconds between two attempts to reach Redis while falling back to the local bucket.
RECHECK_INTERVAL = 5.0
#: Seconds between two attempts to reach Redis while a take waits for it.
_OUTAGE_POLL = 0.2
#: The shortest pause between two takes that found no token (seconds).
_MIN_PAUSE = 0.001

# KEYS[1]: the bucket, a hash {tokens, ts}. ARGV: capacity, refill a second, floor (the
# tokens that must be left after a take), and "take", "drain" or "peek". Returns the tokens
# left and the seconds until a take at this floor could succeed ("0" when it did), as
# strings (Redis would cut Lua numbers to integers). The time is Redis's, the same for
# every client. A missing bucket starts empty: after Redis lost it (a restart without
# persistence, an eviction) nobody knows how full Notify's is, so it refills from nothing.
_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local floor = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = 0
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
  ts = now
end
local wait = 0
if ARGV[4] == 'take' then
  if tokens >= floor + 1 then
    tokens = tokens - 1
  else
    wait = (floor + 1 - tokens) / rate
  end
elseif ARGV[4] == 'drain' then
  tokens = math.min(tokens, 0)
end
if ARGV[4] ~= 'peek' then
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
             'ts', string.format('%.6f', ts))
end
return {string.format('%.6f', tokens), string.format('%.6f', wait)}
"""


def service_id_of(api_key: str) -> str:
    """The service id inside a Notify API key (``name-<service id>-<secret>``)."""
    return api_key[-73:-37]


@dataclass(frozen=True)
class BudgetShape:
    """The shared bucket for a per-minute limit.

    :param rate_per_minute: the service's limit (``DM_NOTIFY_RATE_LIMIT``).
    :param capacity: the bucket's tokens: Notify's size less a second of refill.
    :param per_second: the refill, ``rate_per_minute / 60``.
    :param reserve: the tokens bulk work leaves for transactional sends.
    """

    rate_per_minute: float
    capacity: float
    per_second: float
    reserve: float

    @classmethod
    def for_rate(cls, rate_per_minute: float, bulk_share: float) -> BudgetShape:
        """The shape for a service's limit and the share bulk work may use."""
        size = notify_bucket_size(rate_per_minute)
        capacity = float(max(1, size - jitter_margin(rate_per_minute, size)))
        return cls(
            rate_per_minute=float(rate_per_minute),
            capacity=capacity,
            per_second=rate_per_minute / 60,
            reserve=capacity * (1 - bulk_share),
        )

    def floor(self, kind: str) -> float:
        """The tokens a take of ``kind`` must leave in the bucket."""
        if kind == TRANSACTIONAL:
            return 0.0
        if kind == BULK:
            return self.reserve
        raise InvalidOptionError(f"kind must be {TRANSACTIONAL!r} or {BULK!r}.")


class SharedBudget:
    """The Notify bucket of one service and key type, shared through Redis. Thread-safe,
    and safe across ``fork`` (redis-py opens new connections in a child).

    :param client: a ``redis.Redis`` (see :meth:`from_url`).
    :param service_id: the Notify service's id (:func:`service_id_of`).
    :param key_type: ``"live"``, ``"team"`` or ``"test"`` (``DM_NOTIFY_KEY_TYPE``).
    :param shape: the bucket (:meth:`BudgetShape.for_rate`).
    :param required: True: raise :class:`~flask_dmmail.errors.RedisUnavailableError` when
        Redis does not answer; False: fall back to a local bucket of the same shape.
    :param clock: seconds, for the waits (``time.monotonic``).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        service_id: str,
        key_type: str,
        shape: BudgetShape,
        required: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis

        self._redis_error = redis.RedisError
        self.client = client
        self.key = f"{KEY_PREFIX}:{service_id}:{key_type}"
        self.shape = shape
        self.required = required
        self._clock = clock
        self._script = client.register_script(_SCRIPT)
        self._local = TokenBucket(shape.rate_per_minute, size=shape.capacity, clock=clock)
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._recheck_at = 0.0
        #: Seconds a take of each kind waits for Redis to answer again before it raises
        #: (``required``): :data:`SEND_OUTAGE_GRACE`, :data:`BULK_OUTAGE_GRACE`.
        self.outage_grace: dict[str, float] = {
            TRANSACTIONAL: SEND_OUTAGE_GRACE,
            BULK: BULK_OUTAGE_GRACE,
        }
        #: The seconds each recent take waited for its token (or until ``max_wait`` ended
        #: the wait), by kind: the newest 10,000.
        self.waits: dict[str, deque[float]] = {
            TRANSACTIONAL: deque(maxlen=10_000),
            BULK: deque(maxlen=10_000),
        }

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        service_id: str,
        key_type: str,
        rate_per_minute: float,
        bulk_share: float,
        required: bool,
    ) -> SharedBudget:
        """A budget on the Redis at ``url`` (``DM_MAIL_REDIS_URL``). Connects on first use.

        :raises ~flask_dmmail.errors.ConfigurationError: the ``redis`` package is missing,
            or the URL is not one it can open.
        """
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise ConfigurationError(
                "DM_MAIL_REDIS_URL",
                "is set, but the Redis client is not installed: pip install 'flask-dmmail[redis]'.",
            ) from None
        try:
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=1.0,
                socket_timeout=2.0,
                # This class decides how long to wait for Redis; the client must not retry.
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError:
            raise ConfigurationError(
                "DM_MAIL_REDIS_URL", "is not a URL the Redis client can open."
            ) from None
        return cls(
            client,
            service_id=service_id,
            key_type=key_type,
            shape=BudgetShape.for_rate(rate_per_minute, bulk_share),
            required=required,
        )

    def __repr__(self) -> str:
        return (
            f"<SharedBudget {self.shape.rate_per_minute:g}/min capacity="
            f"{self.shape.capacity:g} reserve={self.shape.reserve:g}>"
        )

    # -- taking --

    def take(
        self,
        kind: str = TRANSACTIONAL,
        *,
        stop: threading.Event | None = None,
        max_wait: float | None = None,
    ) -> bool:
        """Take one token for a post to Notify, waiting for it.

        :param kind: :data:`TRANSACTIONAL` (may take the last token) or :data:`BULK` (only
            above the reserve).
        :param stop: when set, the wait ends and no token is taken.
        :param max_wait: the most seconds to wait for a token (None: no limit).
        :returns: True with a token; False without one (``stop`` was set or ``max_wait``
            passed).
        :raises ~flask_dmmail.errors.RedisUnavailableError: Redis did not answer for
            ``outage_grace[kind]`` seconds, and ``required`` is on.
        """
        floor = self.shape.floor(kind)
        grace = self.outage_grace[kind]
        started = self._clock()
        outage_started: float | None = None
        while True:
            try:
                wait = self._take_once(floor)
            except RedisUnavailableError:
                if not self.required:
                    wait = self._local.take_above(floor)
                else:
                    now = self._clock()
                    if outage_started is None:
                        outage_started = now
                    if now - outage_started >= grace:
                        raise
                    if self._pause(min(_OUTAGE_POLL, grace - (now - outage_started)), stop):
                        return False
                    continue
            waited = self._clock() - started
            if wait <= 0:
                self.waits[kind].append(waited)
                return True
            if max_wait is not None:
                if waited >= max_wait:
                    self.waits[kind].append(waited)
                    return False
                wait = min(wait, max_wait - waited)
            if self._pause(wait, stop):
                return False

    def drain(self) -> None:
        """Notify answered 429: empty the bucket, for every process (best effort: when Redis
        does not answer, only this process's fallback bucket is emptied)."""
        self._local.drain()
        with contextlib.suppress(RedisUnavailableError):
            self._run("drain", 0.0)

    def tokens(self) -> float:
        """The tokens in the shared bucket now (one round trip; nothing taken)."""
        return self._run("peek", 0.0)[0]

    def close(self) -> None:
        """Close the connections to Redis."""
        self.client.close()

    # -- one round trip --

    def _take_once(self, floor: float) -> float:
        """One try at the shared bucket: 0.0 with a token, else the seconds to wait."""
        with self._lock:
            recheck_later = self._down_since is not None and self._clock() < self._recheck_at
            if recheck_later and not self.required:
                raise RedisUnavailableError(_unavailable_message("ConnectionError"))
        return self._run("take", floor)[1]

    def _run(self, action: str, floor: float) -> tuple[float, float]:
        shape = self.shape
        try:
            result: Any = self._script(
                keys=[self.key], args=[shape.capacity, shape.per_second, floor, action]
            )
        except self._redis_error as error:
            self._went_down(type(error).__name__)
            raise RedisUnavailableError(_unavailable_message(type(error).__name__)) from None
        self._came_back()
        tokens, wait = result
        return float(tokens), float(wait)

    def _went_down(self, reason: str) -> None:
        with self._lock:
            now = self._clock()
            self._recheck_at = now + RECHECK_INTERVAL
            if self._down_since is not None:
                return
            self._down_since = now
        if self.required:
            logger.warning(
                "The shared Notify budget's Redis (DM_MAIL_REDIS_URL) did not answer (%s): "
                "sends wait for it, then fail with RedisUnavailableError",
                reason,
                extra={"error": reason},
            )
        else:
            logger.warning(
                "The shared Notify budget's Redis (DM_MAIL_REDIS_URL) did not answer (%s): "
                "this process paces its sends on its own bucket until it does "
                "(DM_MAIL_REDIS_REQUIRED is off)",
                reason,
                extra={"error": reason},
            )

    def _came_back(self) -> None:
        if self._down_since is None:  # the common case, without the lock
            return
        down_since = self._clear_down()
        if down_since is None:  # another thread saw it come back first
            return
        down_for = self._clock() - down_since
        logger.info(
            "The shared Notify budget's Redis answers again after %.1f s",
            down_for,
            extra={"down_for": round(down_for, 1)},
        )

    def _clear_down(self) -> float | None:
        with self._lock:
            down_since, self._down_since = self._down_since, None
            return down_since

    def _pause(self, seconds: float, stop: threading.Event | None) -> bool:
        """Wait ``seconds``; True when ``stop`` was set (now or during the wait)."""
        seconds = max(seconds, _MIN_PAUSE)
        if stop is None:
            time.sleep(seconds)
            return False
        return stop.wait(seconds)


def _unavailable_message(reason: str) -> str:
    return (
        f"The Redis of the shared Notify budget (DM_MAIL_REDIS_URL) did not answer ({reason}), "
        "so no token could be taken and nothing was sent to Notify. Check that Redis is "
        "running and that DM_MAIL_REDIS_URL points at it, then send again (it is safe: the "
        "reference makes it the same email). To send on each process's own bucket while "
        "Redis is down, set DM_MAIL_REDIS_REQUIRED = False."
    )


class SharedRateLimiter(RateLimiter):
    """A bulk run's :class:`~flask_dmmail.ratelimit.RateLimiter` that also takes each token
    from the shared budget (as :data:`BULK`, above the reserve), and drains the shared bucket
    on a 429.

    :param budget: the app's :class:`SharedBudget`.
    :param rate_per_minute: the run's own rate, as for
        :class:`~flask_dmmail.ratelimit.RateLimiter`.
    :param burst: as for :class:`~flask_dmmail.ratelimit.RateLimiter`.
    """

    def __init__(
        self,
        budget: SharedBudget,
        rate_per_minute: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(rate_per_minute, burst=burst, clock=clock)
        self.budget = budget

    def acquire(self, stop: threading.Event) -> bool:
        """Take a token from the run's own bucket, then from the shared one (waiting for
        both); False once ``stop`` is set. Raises
        :class:`~flask_dmmail.errors.RedisUnavailableError` as :meth:`SharedBudget.take`."""
        return super().acquire(stop) and self.budget.take(BULK, stop=stop)

    def penalise(self) -> None:
        """Notify said 429: slow this run (as the local limiter does) and drain the shared
        bucket, so every process backs off."""
        super().penalise()
        self.budget.drain()
