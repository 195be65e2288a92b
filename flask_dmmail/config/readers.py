"""Readers of single config keys: each takes the merged config, checks one key (or one
family of keys) and returns its value, or raises :class:`~flask_dmmail.errors.ConfigurationError`
naming the key and what to set instead."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import ConfigurationError, DMMailError
from ..validation import canonical_domain, check_email_address, is_uuid

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


def read_bool(config: Mapping[str, Any], key: str, default: bool | None) -> bool | None:
    value = config.get(key, default)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError(key, "must be True or False (or 'true'/'false' in the environment).")


def read_number(config: Mapping[str, Any], key: str, default: float, *, minimum: float) -> float:
    value = config.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(key, f"must be a number of at least {minimum}.") from None
    if isinstance(value, bool) or not number >= minimum or number != number:
        raise ConfigurationError(key, f"must be a number of at least {minimum}.")
    return number


def read_whole(config: Mapping[str, Any], key: str, default: int) -> int:
    number = read_number(config, key, default, minimum=0)
    if number != int(number):
        raise ConfigurationError(key, "must be a whole number of at least 0.")
    return int(number)


def read_mapping(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
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


def domain_rule(key: str, domain: object) -> str:
    """A domain of a rule (redirect or allowed recipients), in either Unicode or punycode."""
    if not isinstance(domain, str):
        raise ConfigurationError(key, "every domain must be a string such as 'example.com'.")
    clean = canonical_domain(domain)
    labels = clean.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise ConfigurationError(
            key, f"{domain[:80]!r} is not a domain name; list domains such as 'example.com'."
        )
    return clean


def read_strings(config: Mapping[str, Any], key: str) -> list[Any]:
    """A list of strings: a list or tuple, a JSON list, or a comma-separated string."""
    value = config.get(key)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ConfigurationError(key, "is not a JSON list of strings.") from None
        else:
            return [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, list | tuple | set | frozenset):
        raise ConfigurationError(
            key, "must be a list of strings (or a comma-separated string in the environment)."
        )
    return list(value)


def broker_url(config: Mapping[str, Any], key: str) -> str | None:
    """A broker or Redis URL (``redis://host:6379/0``), or None when the key is not set."""
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "://" not in value or any(c.isspace() for c in value):
        raise ConfigurationError(
            key, "must be a URL such as 'redis://localhost:6379/0' (the broker Celery uses)."
        )
    return value


def notify_key(config: Mapping[str, Any]) -> str | None:
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


def templates(config: Mapping[str, Any]) -> Mapping[str, str]:
    key = "DM_NOTIFY_TEMPLATES"
    checked: dict[str, str] = {}
    for name, template_id in read_mapping(config, key).items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(key, "every template name must be a non-empty string.")
        if not is_uuid(template_id):
            raise ConfigurationError(
                key, f"the template {name!r} must map to a template UUID from Notify."
            )
        checked[name] = str(template_id).lower()
    return MappingProxyType(checked)


def reply_to_ids(config: Mapping[str, Any]) -> Mapping[str, str]:
    """DM_NOTIFY_REPLY_TO_IDS: reply-to name -> the id of one of the service's reply-to
    addresses, so that ``reply_to_id`` takes a name as ``template`` does."""
    key = "DM_NOTIFY_REPLY_TO_IDS"
    checked: dict[str, str] = {}
    for name, reply_id in read_mapping(config, key).items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(key, "every reply-to name must be a non-empty string.")
        if not is_uuid(reply_id):
            raise ConfigurationError(
                key,
                f"the reply-to name {name!r} must map to a reply-to address UUID from Notify "
                "(Settings > Reply-to email addresses).",
            )
        checked[name] = str(reply_id).lower()
    return MappingProxyType(checked)


def redirects(config: Mapping[str, Any]) -> Mapping[str, str]:
    key = "DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS"
    checked: dict[str, str] = {}
    for domain, address in read_mapping(config, key).items():
        clean = domain_rule(key, domain)
        try:
            checked[clean] = check_email_address(address)
        except DMMailError:
            raise ConfigurationError(
                key,
                f"the domain {clean!r} must map to one valid email address to send its mail to "
                "(for example Notify's simulate-delivered address, which is never delivered).",
            ) from None
    return MappingProxyType(checked)


def hash_key(config: Mapping[str, Any], *, relaxed: bool) -> bytes:
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


def sandbox_seed(config: Mapping[str, Any]) -> Mapping[str, Any] | str | None:
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


def mailchimp_key(config: Mapping[str, Any]) -> str | None:
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


def audiences(config: Mapping[str, Any]) -> Mapping[str, str]:
    key = "DM_MAILCHIMP_AUDIENCES"
    checked: dict[str, str] = {}
    for name, list_id in read_mapping(config, key).items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(key, "every audience name must be a non-empty string.")
        if not isinstance(list_id, str) or not _LIST_ID.fullmatch(list_id):
            raise ConfigurationError(
                key, f"the audience {name!r} must map to a Mailchimp list id such as 'd35601203b'."
            )
        checked[name] = list_id
    return MappingProxyType(checked)


def mailchimp_webhook_token(config: Mapping[str, Any]) -> str | None:
    key = "DM_MAILCHIMP_WEBHOOK_TOKEN"
    token = config.get(key) or None
    if token is not None and (not isinstance(token, str) or not _URL_TOKEN.fullmatch(token)):
        raise ConfigurationError(
            key,
            "must be a random string of at least 16 letters, digits, '-' or '_' (it goes in "
            "the webhook URL you give Mailchimp); e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'.",
        )
    return token


def sanitise(
    config: Mapping[str, Any], templates: Mapping[str, str]
) -> Mapping[str, frozenset[str]]:
    """DM_NOTIFY_SANITISE: template name (or id) -> the personalisation fields whose values
    always get Notify's sanitise_content_for, keyed here by template id."""
    key = "DM_NOTIFY_SANITISE"
    checked: dict[str, frozenset[str]] = {}
    for name, fields in read_mapping(config, key).items():
        if isinstance(name, str) and name in templates:
            template_id = templates[name]
        elif is_uuid(name):
            template_id = str(name).lower()
        else:
            raise ConfigurationError(
                key, "every key must be a template name from DM_NOTIFY_TEMPLATES or a UUID."
            )
        if isinstance(fields, str) or not isinstance(fields, list | tuple | set | frozenset):
            raise ConfigurationError(
                key, "every template must map to a list of personalisation field names."
            )
        if not all(isinstance(f, str) and f.strip() for f in fields):
            raise ConfigurationError(key, "every field name must be a non-empty string.")
        checked[template_id] = frozenset(fields)
    return MappingProxyType(checked)
