"""Fixtures of the queued-send tests: a real redis-server and Celery worker processes
(``tests/celery_support.py``). When ``tests/redis_support.py``'s ``redis_url`` is
registered in ``tests/conftest.py``, drop ``redis_url`` from the import below."""

from __future__ import annotations

from tests.celery_support import clean_redis, redis_url, workers

__all__ = ["clean_redis", "redis_url", "workers"]
