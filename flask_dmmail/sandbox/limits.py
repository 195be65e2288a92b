"""Notify's limits in the sandbox: a token bucket per key type, and the daily limit.

:class:`Limits` holds the per-minute rate limit (one
:class:`~flask_dmmail.ratelimit.TokenBucket` per key type, sized as Notify sizes it unless a
``burst`` is given) and the per-day count of sends by notification type (test keys are never
counted). The Notify API checks both before it reads a request's body.

As Notify does, a request takes its token first and is refused when fewer than one is left,
so a bucket of ``burst`` tokens lets ``burst - 1`` requests through at once, and a refused
request spends the token it finds. A bucket must hold at least 2 tokens (Notify's smallest,
for a limit of 1 a minute); one of 1 would refuse everything.
"""

from __future__ import annotations

import threading

from ..ratelimit import TokenBucket, notify_bucket_size
from .models import utcnow

__all__ = ["Limits"]

#: The smallest bucket that lets a request through (Notify's for a limit of 1 a minute).
MIN_BURST = 2


def _check_burst(burst: int | None) -> None:
    if burst is not None and burst < MIN_BURST:
        raise ValueError(
            f"burst must be at least {MIN_BURST}: Notify takes a token before it checks and "
            "refuses when none is left, so a bucket of 1 token would refuse every request"
        )


class Limits:
    """The rate and daily limits of one Notify service.

    :param lock: the Notify state's lock; every method takes it.
    :param rate_limit: requests per 60 seconds per key type.
    :param burst: the bucket size (None: Notify's own sizing for ``rate_limit``).
    :param daily_limit: sends per day per notification type (test keys are not counted).
    """

    def __init__(
        self, lock: threading.RLock, *, rate_limit: int, burst: int | None, daily_limit: int
    ) -> None:
        self.lock = lock
        _check_burst(burst)
        self._initial = (rate_limit, burst, daily_limit)
        self.reset()

    def reset(self) -> None:
        """Back to the limits given at construction, full buckets and nothing sent today."""
        with self.lock:
            rate_limit, burst, daily_limit = self._initial
            self.rate_limit: int = rate_limit
            self.burst: int | None = burst
            self.daily_limit: int = daily_limit
            self._buckets: dict[str, TokenBucket] = {}
            #: Requests refused with 429 RateLimitError since the last reset, by key type.
            self.rate_limited: dict[str, int] = {}
            self._daily: dict[str, int] = {}
            self._daily_date = utcnow().date()

    @property
    def bucket_size(self) -> int:
        """The size of each key type's bucket: ``burst``, or Notify's for the rate."""
        with self.lock:
            return self.burst or notify_bucket_size(self.rate_limit)

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
                _check_burst(burst)
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

    def take_rate_token(self, key_type: str) -> bool:
        """Notify's check on the key type's bucket: take a token (if there is one); False
        when fewer than one is left after it."""
        with self.lock:
            bucket = self._buckets.get(key_type)
            if bucket is None:
                bucket = self._buckets[key_type] = TokenBucket(self.rate_limit, size=self.burst)
            if bucket.try_take():
                return True
            self.rate_limited[key_type] = self.rate_limited.get(key_type, 0) + 1
            return False

    def daily_limit_reached(self, key_type: str, notification_type: str) -> bool:
        """True when one more send of this type would pass today's limit (test keys never)."""
        if key_type == "test":
            return False
        with self.lock:
            self._roll_day()
            return self._daily.get(notification_type, 0) + 1 > self.daily_limit

    def count_send(self, key_type: str, notification_type: str) -> None:
        """Count one send against today's limit (test keys are not counted)."""
        if key_type == "test":
            return
        with self.lock:
            self._roll_day()
            self._daily[notification_type] = self._daily.get(notification_type, 0) + 1

    def _roll_day(self) -> None:
        today = utcnow().date()
        if today != self._daily_date:
            self._daily_date = today
            self._daily.clear()
