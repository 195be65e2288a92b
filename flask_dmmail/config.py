"""Every config key, its default and its validation, in one place.

Config is read once, in ``init_app``, from the app's config (config classes, and
environment variables through Flask's dotenv support), checked, and frozen into a
:class:`Settings`. Nothing reads ``app.config`` at send time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import ConfigurationError, DMMailError
from .validation import check_email_address, is_uuid

__all__ = ["DEFAULT_NOTIFY_BASE_URL", "Settings"]

DEFAULT_NOTIFY_BASE_URL = "https://api.notifications.service.gov.uk"
DEFAULT_MAILCHIMP_BASE_URL = "https://{dc}.api.mailchimp.com/3.0"
_DEV_HASH_KEY = b"flask-dmmail development hash key: not for live use"

_UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_NOTIFY_KEY = re.compile(rf"^.+-{_UUID_RE}-{_UUID_RE}$")
_DOMAIN_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAILCHIMP_KEY = re.compile(r"^[0-9a-zA-Z]+-([a-z]+[0-9]+)$")
_LIST_ID = re.compile(r"^[0-9a-zA-Z]{1,32}$")
_URL_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,200}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

_TEST_KEY_HELP = (
    "To send from this machine, get a Notify *test* key: sign in to GOV.UK Notify, go to "
    "API integration > API keys > Create an API key, choose 'Test', and put the key in "
    "DM_NOTIFY_KEY (for example in a .env file, never committed). Or turn the local sandbox "
    "on with DM_MAIL_SANDBOX = True: emails then go to a local Notify-compatible server "
    "whose outbox you can read at /_dmmail/."
)


def _bool(config: Mapping[str, Any], key: str, default: bool | None) -> bool | None:
    value = config.get(key, default)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError(key, "must be True or False (or 'true'/'false' in the environment).")


def _number(config: Mapping[str, Any], key: str, default: float, *, minimum: float) -> float:
    value = config.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(key, f"must be a number of at least {minimum}.") from None
    if isinstance(value, bool) or not number >= minimum or number != number:
        raise ConfigurationError(key, f"must be a number of at least {minimum}.")
    return number


def _whole(config: Mapping[str, Any], key: str, default: int) -> int:
    number = _number(config, key, default, minimum=0)
    if number != int(number):
        raise ConfigurationError(key, "must be a whole number of at least 0.")
    return int(number)


def _mapping(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = config.get(key)
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigurationError(
                key, 'must be a mapping, or a JSON object string such as {"name": "value"}.'
            ) from None
    if not isinstance(value, Mapping):
        raise ConfigurationError(key, "must be a mapping (a dict, or a JSON object string).")
    return value


def normalise_domain(domain: str) -> str:
    """A domain as the redirect compares it: trimmed, lower-cased, without a trailing dot."""
    return domain.strip().lower().rstrip(".")


def _notify_key(config: Mapping[str, Any]) -> str | None:
    for name in ("DM_NOTIFY_KEY", "DM_NOTIFY_API_KEY"):
        value = config.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not _NOTIFY_KEY.match(value.strip()):
            raise ConfigurationError(
                name,
                "is not a Notify API key. A key looks like 'name-<service id>-<secret>', "
                "two UUIDs after the key's name; copy the whole key from Notify's API keys page.",
            )
        return value.strip()
    return None


def _templates(config: Mapping[str, Any]) -> Mapping[str, str]:
    key = "DM_NOTIFY_TEMPLATES"
    checked: dict[str, str] = {}
    for name, template_id in _mapping(config, key).items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(key, "every template name must be a non-empty string.")
        if not is_uuid(template_id):
            raise ConfigurationError(
                key, f"the template {name!r} must map to a template UUID from Notify."
            )
        checked[name] = str(template_id).lower()
    return MappingProxyType(checked)


def _redirects(config: Mapping[str, Any]) -> Mapping[str, str]:
    key = "DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS"
    checked: dict[str, str] = {}
    for domain, address in _mapping(config, key).items():
        if not isinstance(domain, str):
            raise ConfigurationError(key, "every domain must be a string such as 'example.com'.")
        clean = normalise_domain(domain)
        labels = clean.split(".")
        if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
            raise ConfigurationError(
                key, f"{domain!r} is not a domain name; list domains such as 'example.com'."
            )
        try:
            checked[clean] = check_email_address(address)
        except DMMailError:
            raise ConfigurationError(
                key,
                f"the domain {clean!r} must map to one valid email address to send its mail to "
                "(for example simulate-delivered@notifications.service.gov.uk).",
            ) from None
    return MappingProxyType(checked)


def _hash_key(config: Mapping[str, Any], *, relaxed: bool) -> bytes:
    explicit = config.get("DM_MAIL_HASH_KEY")
    if explicit:
        if isinstance(explicit, str):
            return explicit.encode("utf-8")
        if isinstance(explicit, bytes):
            return explicit
        raise ConfigurationError("DM_MAIL_HASH_KEY", "must be a string or bytes.")
    secret = config.get("SECRET_KEY")
    if secret:
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        return hmac.new(raw, b"flask-dmmail address hash key", hashlib.sha256).digest()
    if relaxed:
        return _DEV_HASH_KEY
    raise ConfigurationError(
        "DM_MAIL_HASH_KEY",
        "is not set and neither is SECRET_KEY. Address hashes and derived references need a "
        "stable secret: set DM_MAIL_HASH_KEY (the same value wherever references must match).",
    )


def _sandbox_seed(config: Mapping[str, Any]) -> Mapping[str, Any] | str | None:
    key = "DM_NOTIFY_SANDBOX_TEMPLATES"
    value = config.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str | os.PathLike):
        path = Path(value)
        if not path.is_file():
            raise ConfigurationError(
                key, "names a file that does not exist; give the path of a JSON or YAML seed file."
            )
        return str(path)
    if isinstance(value, Mapping):
        return value
    raise ConfigurationError(key, "must be a path to a seed file or a mapping like the seed file.")


def _mailchimp_key(config: Mapping[str, Any]) -> str | None:
    value = config.get("DM_MAILCHIMP_API_KEY")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _MAILCHIMP_KEY.match(value.strip()):
        raise ConfigurationError(
            "DM_MAILCHIMP_API_KEY",
            "is not a Mailchimp API key; a key ends with its data centre, like '…-us5'. "
            "Copy it from Mailchimp: Profile > Extras > API keys.",
        )
    return value.strip()


def _audiences(config: Mapping[str, Any]) -> Mapping[str, str]:
    key = "DM_MAILCHIMP_AUDIENCES"
    checked: dict[str, str] = {}
    for name, list_id in _mapping(config, key).items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(key, "every audience name must be a non-empty string.")
        if not isinstance(list_id, str) or not _LIST_ID.match(list_id):
            raise ConfigurationError(
                key, f"the audience {name!r} must map to a Mailchimp list id such as 'd35601203b'."
            )
        checked[name] = list_id
    return MappingProxyType(checked)


def _mailchimp_webhook_token(config: Mapping[str, Any]) -> str | None:
    key = "DM_MAILCHIMP_WEBHOOK_TOKEN"
    token = config.get(key) or None
    if token is not None and (not isinstance(token, str) or not _URL_TOKEN.match(token)):
        raise ConfigurationError(
            key,
            "must be a random string of at least 16 letters, digits, '-' or '_' (it goes in "
            "the webhook URL you give Mailchimp); e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'.",
        )
    return token


#: Every key flask-dmmail reads; each is documented in the README's configuration table.
KEYS = (
    "DM_NOTIFY_KEY",
    "DM_NOTIFY_API_KEY",
    "DM_NOTIFY_BASE_URL",
    "DM_NOTIFY_TEMPLATES",
    "DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS",
    "DM_NOTIFY_TIMEOUT",
    "DM_NOTIFY_RETRIES",
    "DM_NOTIFY_RETRY_BACKOFF",
    "DM_MAIL_SANDBOX",
    "DM_NOTIFY_SANDBOX_TEMPLATES",
    "DM_MAIL_HASH_KEY",
    "DM_MAILCHIMP_API_KEY",
    "DM_MAILCHIMP_BASE_URL",
    "DM_MAILCHIMP_AUDIENCES",
    "DM_MAILCHIMP_TIMEOUT",
    "DM_MAILCHIMP_RETRIES",
    "DM_MAILCHIMP_RETRY_BACKOFF",
    "DM_MAILCHIMP_WEBHOOK_TOKEN",
    "DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES",
    "DM_NOTIFY_CALLBACK_TOKEN",
    "DM_NOTIFY_BULK_RATE",
)


def _with_environment(config: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    merged = {key: config[key] for key in ("SECRET_KEY", *KEYS) if key in config}
    for key in KEYS:
        if merged.get(key) is None and environ.get(key):
            merged[key] = environ[key]
    return merged


@dataclass(frozen=True)
class Settings:
    """The extension's validated, frozen configuration. Secrets are left out of ``repr``."""

    notify_key: str | None = field(repr=False)
    notify_base_url: str
    templates: Mapping[str, str]
    redirects: Mapping[str, str] = field(repr=False)
    timeout: float
    retries: int
    retry_backoff: float
    sandbox: bool
    sandbox_seed: Mapping[str, Any] | str | None = field(repr=False)
    hash_key: bytes = field(repr=False)
    mailchimp_api_key: str | None = field(repr=False)
    mailchimp_base_url: str | None
    audiences: Mapping[str, str]
    mailchimp_timeout: float
    mailchimp_retries: int
    mailchimp_retry_backoff: float
    mailchimp_webhook_token: str | None = field(repr=False)
    mailchimp_allow_unlisted_audiences: bool
    callback_token: str | None = field(repr=False)
    #: Requests per minute bulk sends may use (below the key's 3,000 to leave headroom).
    bulk_rate: float = 2700.0

    @classmethod
    def from_config(
        cls,
        app_config: Mapping[str, Any],
        *,
        debug: bool = False,
        testing: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Read and check every key. Raises ConfigurationError naming the first bad key.

        A key set in the app's config wins; a ``DM_*`` key the config leaves unset (or None)
        is read from the environment (``environ``, default ``os.environ``), which is where
        Flask's dotenv support puts the values of a ``.env`` file.
        """
        config = _with_environment(app_config, os.environ if environ is None else environ)
        relaxed = debug or testing
        notify_key = _notify_key(config)
        sandbox = _bool(config, "DM_MAIL_SANDBOX", None)
        if sandbox is None:
            sandbox = notify_key is None and relaxed
        if not sandbox and notify_key is None:
            raise ConfigurationError(
                "DM_NOTIFY_KEY",
                f"no Notify API key is set, and the sandbox is off. {_TEST_KEY_HELP}",
            )
        base_url = config.get("DM_NOTIFY_BASE_URL") or DEFAULT_NOTIFY_BASE_URL
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigurationError("DM_NOTIFY_BASE_URL", "must be an http(s) URL.")
        mc_base = config.get("DM_MAILCHIMP_BASE_URL") or None
        if mc_base is not None and (
            not isinstance(mc_base, str) or not mc_base.startswith(("http://", "https://"))
        ):
            raise ConfigurationError("DM_MAILCHIMP_BASE_URL", "must be an http(s) URL ending /3.0.")
        token = config.get("DM_NOTIFY_CALLBACK_TOKEN") or None
        if token is not None and (not isinstance(token, str) or len(token) < 16):
            raise ConfigurationError(
                "DM_NOTIFY_CALLBACK_TOKEN", "must be a random string of at least 16 characters."
            )
        return cls(
            notify_key=notify_key,
            notify_base_url=base_url.rstrip("/"),
            templates=_templates(config),
            redirects=_redirects(config),
            timeout=_number(config, "DM_NOTIFY_TIMEOUT", 15.0, minimum=0.1),
            retries=_whole(config, "DM_NOTIFY_RETRIES", 3),
            retry_backoff=_number(config, "DM_NOTIFY_RETRY_BACKOFF", 0.5, minimum=0),
            sandbox=sandbox,
            sandbox_seed=_sandbox_seed(config),
            hash_key=_hash_key(config, relaxed=relaxed or sandbox),
            mailchimp_api_key=_mailchimp_key(config),
            mailchimp_base_url=mc_base.rstrip("/") if isinstance(mc_base, str) else None,
            audiences=_audiences(config),
            mailchimp_timeout=_number(config, "DM_MAILCHIMP_TIMEOUT", 30.0, minimum=0.1),
            mailchimp_retries=_whole(config, "DM_MAILCHIMP_RETRIES", 3),
            mailchimp_retry_backoff=_number(config, "DM_MAILCHIMP_RETRY_BACKOFF", 0.5, minimum=0),
            mailchimp_webhook_token=_mailchimp_webhook_token(config),
            mailchimp_allow_unlisted_audiences=bool(
                _bool(config, "DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES", False)
            ),
            callback_token=token,
            bulk_rate=_number(config, "DM_NOTIFY_BULK_RATE", 2700.0, minimum=1),
        )
