"""The backoff shared by every retry loop (Notify sends and look-ups, Mailchimp calls)."""

from __future__ import annotations

import random

__all__ = ["BACKOFF_CAP", "backoff_delay"]

#: No single wait between two attempts is longer than this (seconds).
BACKOFF_CAP = 30.0


def backoff_delay(attempt: int, base: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, base * 2**(attempt-1)], capped."""
    return random.uniform(0, min(BACKOFF_CAP, base * 2 ** (attempt - 1)))
