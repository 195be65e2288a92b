"""Notify's token bucket, stated once.

Notify limits each service and key type with a token bucket
(``../shared/reference/notify-api.md`` section 6): it holds
``min(ceil(rate / 3) + 1, 1000)`` tokens and refills at ``rate / 60`` a second, where
``rate`` is the service's per-minute limit (3000 unless Notify set another). Notify takes
a token before it looks, and refuses when fewer than one is left: a full bucket of 1000
lets 999 through. The sandbox enforces that bucket (:class:`TokenBucket`); bulk sending
paces itself by the same shape, less a margin for network jitter (:class:`RateLimiter`),
which is always at least the token Notify keeps back. With ``DM_MAIL_REDIS_URL`` every
process of the service shares one such bucket in Redis (:mod:`flask_dmmail.budget`), and a
:class:`TokenBucket` of the same shape is each process's fallback while Redis is down.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = [
    "JITTER_ALLOWANCE",
    "MAX_BUCKET",
    "NOTIFY_RATE_LIMIT",
    "RateLimiter",
    "TokenBucket",
    "jitter_margin",
    "notify_bucket_size",
]

#: Notify's default per-minute limit for a service.
NOTIFY_RATE_LIMIT = 3000
#: The largest bucket Notify keeps, whatever the rate.
MAX_BUCKET = 1000
#: Seconds of refill the :class:`RateLimiter` keeps in hand, so requests that arrive at
#: Notify closer together than they left still fit its bucket.
JITTER_ALLOWANCE = 1.0


def notify_bucket_size(rate_per_minute: float) -> int:
    """The size of Notify's token bucket for a per-minute limit: ``min(ceil(rate/3)+1, 1000)``."""
    return min(math.ceil(rate_per_minute / 3) + 1, MAX_BUCKET)


def jitter_margin(rate_per_minute: float, size: int) -> int:
    """The tokens a client-side bucket of ``size`` keeps in hand: the one Notify keeps back
    (it refuses below one token) and ``JITTER_ALLOWANCE`` seconds of refill, so that requests
    which reach Notify closer together than they left still fit Notify's bucket; at most
    half the bucket."""
    return min(math.ceil(rate_per_minute / 60 * JITTER_ALLOWANCE) + 1, size // 2)


class TokenBucket:
    """A token bucket of ``size`` tokens (Notify's for the rate unless given) refilled at
    ``rate_per_minute / 60`` a second. Thread-safe.

    :meth:`try_take` is Notify's own check (the server's view): it takes a token first and
    refuses when less than one is left, so a full bucket of ``size`` lets ``size - 1``
    through and a refused request still spends the token it finds. :meth:`reserve` always
    takes one and says how long to wait for it (the client's view: wait your turn).
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        size: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate_per_minute > 0:
            raise ValueError("rate_per_minute must be positive")
        self.capacity = float(size if size else notify_bucket_size(rate_per_minute))
        self.per_second = rate_per_minute / 60
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.per_second * 60:g}/min, capacity={self.capacity:g})"

    @property
    def tokens(self) -> float:
        """The tokens in the bucket now (negative while takers are waiting)."""
        with self._lock:
            self._refill(self._clock())
            return self._tokens

    @property
    def refill_per_second(self) -> float:
        """Tokens added a second."""
        return self.per_second

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.per_second)
        self._updated = now

    def try_take(self) -> bool:
        """Notify's rate-limit check: True when the request may go on.

        As notifications-utils' ``tally-bucket-rate-limit`` script does, whole tokens are
        added for the time since the last whole token (the part of a token already earned
        is kept), the bucket is capped, one token is taken if there is one, and the request
        is refused when fewer than one token is left (notifications-api's
        ``token_bucket_rate_limit_exceeded``: ``remaining < 1``).
        """
        with self._lock:
            now = self._clock()
            earned = self._tokens + max(0.0, now - self._updated) * self.per_second
            whole = math.floor(earned)
            self._tokens = min(whole, math.floor(self.capacity)) + (earned - whole)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
            return self._tokens >= 1

    def reserve(self) -> float:
        """Take a token, going into debt if need be: the seconds to wait before using it."""
        with self._lock:
            self._refill(self._clock())
            self._tokens -= 1
            return -self._tokens / self.per_second if self._tokens < 0 else 0.0

    def take_above(self, floor: float = 0.0) -> float:
        """Take a token if ``floor`` tokens are left after it: 0.0. Otherwise take nothing
        and return the seconds until one could be taken (no debt: a taker that may only use
        what lies above a floor never delays one that may go below it).

        :param floor: the tokens that must be left in the bucket after the take.
        """
        with self._lock:
            self._refill(self._clock())
            if self._tokens >= floor + 1:
                self._tokens -= 1
                return 0.0
            return (floor + 1 - self._tokens) / self.per_second

    def drain(self) -> None:
        """Empty the bucket (Notify said 429: its own bucket is empty)."""
        with self._lock:
            self._refill(self._clock())
            self._tokens = min(self._tokens, 0.0)


class RateLimiter(TokenBucket):
    """Paces the sender threads of one bulk run to fit Notify's bucket.

    It holds Notify's bucket for the rate (or ``burst``) less room for
    ``JITTER_ALLOWANCE`` seconds of refill. :meth:`penalise` (a 429 from Notify: someone
    else uses the key) pauses every thread and lowers the rate; it creeps back up while no
    429 comes.
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        size = burst if burst is not None else notify_bucket_size(rate_per_minute)
        margin = jitter_margin(rate_per_minute, size)
        super().__init__(rate_per_minute, size=max(1, size - margin), clock=clock)
        self.configured = float(rate_per_minute)
        self.rate_limited = 0
        self._lowered_at: float | None = None

    def __repr__(self) -> str:
        return f"RateLimiter({self.per_second * 60:.0f}/min, capacity={self.capacity:g})"

    def _refill(self, now: float) -> None:
        if self._lowered_at is not None and now - self._lowered_at >= 5.0:
            # No 429 for 5 s: give back a tenth of the configured rate.
            self.per_second = min(self.configured / 60, self.per_second + self.configured / 600)
            self._lowered_at = None if self.per_second * 60 >= self.configured else now
        super()._refill(now)

    def acquire(self, stop: threading.Event) -> bool:
        """Take a token, waiting for it; False (and no token) once ``stop`` is set."""
        wait = self.reserve()
        if wait > 0:
            return not stop.wait(wait)
        return not stop.is_set()

    def penalise(self) -> None:
        """Notify said 429: pause everyone for a second and lower the rate by 30%
        (at most once a second, never below a tenth of the configured rate)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            self.rate_limited += 1
            if self._lowered_at is not None and now - self._lowered_at < 1.0:
                return
            self.per_second = max(self.configured / 600, self.per_second * 0.7)
            self._tokens = min(self._tokens, 0.0) - self.per_second
            self._lowered_at = now

    @property
    def rate(self) -> float:
        """The current rate, in requests per minute."""
        return self.per_second * 60
