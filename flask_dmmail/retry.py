"""The backoff shared by every retry loop (Notify sends and look-ups, Mailchimp calls).

Every loop retries exactly the errors whose ``transient`` is true (see
:class:`~flask_dmmail.errors.ServiceError`): rate limits and the service being unavailable
or not answering; a bulk run puts those emails back in its queue instead.
"""

from __future__ import annotations

import math
import random

__all__ = ["BACKOFF_CAP", "backoff_delay"]

#: No single wait between two attempts is longer than this (seconds).
BACKOFF_CAP = 30.0


def backoff_delay(attempt: int, base: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, base * 2**(attempt-1)], capped
    at :data:`BACKOFF_CAP`.

    :param attempt: the attempt that just failed, from 1.
    :param base: the first attempt's largest wait, in seconds (``DM_NOTIFY_RETRY_BACKOFF``,
        ``DM_MAILCHIMP_RETRY_BACKOFF``).
    """
    if base <= 0:
        return 0.0
    # Compare exponents first: 2**(attempt-1) overflows a float from attempt 1025.
    if attempt - 1 >= math.log2(BACKOFF_CAP / base):
        return random.uniform(0, BACKOFF_CAP)
    return random.uniform(0, base * 2 ** (attempt - 1))
