"""Readers of the keys of one Notify budget shared through Redis (``docs/scaling.md``):
``DM_MAIL_REDIS_URL``, ``DM_MAIL_REDIS_REQUIRED``, ``DM_NOTIFY_RATE_LIMIT``,
``DM_NOTIFY_BULK_SHARE`` and ``DM_NOTIFY_KEY_TYPE``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError
from .readers import read_bool, read_number

#: The schemes of the URLs redis-py opens.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: Notify's key types, as this library names them (Notify calls a live key "normal").
KEY_TYPES = ("live", "team", "test")
#: The default share of the shared bucket bulk work may use.
DEFAULT_BULK_SHARE = 0.8


def redis_url(config: Mapping[str, Any]) -> str | None:
    """DM_MAIL_REDIS_URL: where the shared Notify budget lives (None: each process keeps
    its own, as without Redis). The value is never repeated in a message: it may hold a
    password."""
    key = "DM_MAIL_REDIS_URL"
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip().lower().startswith(REDIS_SCHEMES):
        raise ConfigurationError(
            key,
            "must be a Redis URL such as redis://localhost:6379/0 (or rediss:// for TLS, "
            "unix:///path/to/redis.sock for a socket).",
        )
    return value.strip()


def redis_required(config: Mapping[str, Any], *, production: bool) -> bool:
    """DM_MAIL_REDIS_REQUIRED: refuse to send without the shared budget (default: on in
    production, off elsewhere, where each process falls back to its own bucket)."""
    value = read_bool(config, "DM_MAIL_REDIS_REQUIRED", None)
    return production if value is None else value


def rate_limit(config: Mapping[str, Any]) -> float:
    """DM_NOTIFY_RATE_LIMIT: the service's per-minute limit, as Notify set it (3000)."""
    return read_number(config, "DM_NOTIFY_RATE_LIMIT", 3000.0, minimum=1)


def bulk_share(config: Mapping[str, Any]) -> float:
    """DM_NOTIFY_BULK_SHARE: the share of the shared bucket bulk work may empty; the rest is
    kept for transactional sends."""
    key = "DM_NOTIFY_BULK_SHARE"
    value = config.get(key, DEFAULT_BULK_SHARE)
    message = (
        "must be a number above 0 and at most 1: the share of the shared Notify bucket bulk "
        "sends may use (0.8 keeps a fifth for the app's own sends)."
    )
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(key, message) from None
    if isinstance(value, bool) or not 0 < share <= 1:
        raise ConfigurationError(key, message)
    return share


def key_type(config: Mapping[str, Any]) -> str:
    """DM_NOTIFY_KEY_TYPE: the type of the Notify key (live, team or test). Notify keeps one
    bucket per service and key type, and so does the shared budget; the key itself does not
    say its type."""
    key = "DM_NOTIFY_KEY_TYPE"
    value = config.get(key) or "live"
    if not isinstance(value, str) or value.strip().lower() not in KEY_TYPES:
        raise ConfigurationError(key, "must be 'live', 'team' or 'test'.")
    return value.strip().lower()


def default_bulk_rate(rate_per_minute: float, *, shared: bool) -> float:
    """DM_NOTIFY_BULK_RATE's default: the whole limit when the shared budget keeps room for
    the app's own sends; else nine tenths of it (2700 of Notify's 3000)."""
    return rate_per_minute if shared else rate_per_minute * 0.9
