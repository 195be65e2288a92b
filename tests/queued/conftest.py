"""Fixtures of the queued-send tests: Celery worker processes (``tests/celery_support.py``)
against the real redis-server of ``tests/redis_support.py`` (``redis_url``)."""

from __future__ import annotations

from tests.celery_support import clean_redis, workers

__all__ = ["clean_redis", "workers"]
