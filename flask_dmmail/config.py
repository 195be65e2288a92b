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
from .validation import canonical_address, canonical_domain, check_email_address, is_uuid

__all__ = ["DEFAULT_NOTIFY_BASE_URL", "PRODUCTION", "AllowedRecipients", "Settings"]

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

_STAGE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
#: The one stage where the stage guards are off.
PRODUCTION = "production"
#: Notify's simulator addresses: always safe to send to (nothing is delivered).
SIMULATOR_DOMAINS = ("simulator.notify",)
SIMULATOR_ADDRESSES = (
    "simulate-delivered@notifications.service.gov.uk",
    "simulate-delivered-2@notifications.service.gov.uk",
    "simulate-delivered-3@notifications.service.gov.uk",
)
DEFAULT_SAFE_ADDRESS = SIMULATOR_ADDRESSES[0]
STAGE_GUARD_MODES = ("redirect", "refuse")

_KEY_HELP = (
    "Set DM_NOTIFY_KEY from the environment to the service's live key (Notify: API "
    "integration > API keys), never in a committed file."
)
_TEST_KEY_HELP = (
    "To send from this machine, get a Notify *test* key: sign in to GOV.UK Notify, go to "
    "API integration > API keys > Create an API key, choose 'Test', and put the key in "
    "DM_NOTIFY_KEY (for example in a .env file, never committed). Or run the app in debug "
    "mode (flask run --debug) without a key: emails then go to a local Notify-compatible "
    "sandbox whose outbox you can read at /_dmmail/."
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


def _domain_rule(key: str, domain: object) -> str:
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
        clean = _domain_rule(key, domain)
        try:
            checked[clean] = check_email_address(address)
        except DMMailError:
            raise ConfigurationError(
                key,
                f"the domain {clean!r} must map to one valid email address to send its mail to "
                "(for example Notify's simulate-delivered address, which is never delivered).",
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
        if not isinstance(list_id, str) or not _LIST_ID.fullmatch(list_id):
            raise ConfigurationError(
                key, f"the audience {name!r} must map to a Mailchimp list id such as 'd35601203b'."
            )
        checked[name] = list_id
    return MappingProxyType(checked)


def _mailchimp_webhook_token(config: Mapping[str, Any]) -> str | None:
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


def _stage(config: Mapping[str, Any], *, debug: bool, testing: bool) -> str:
    key = "DM_ENVIRONMENT"
    value = config.get(key)
    if value is None or value == "":
        if testing:
            return "test"
        if debug:
            return "development"
        raise ConfigurationError(
            key,
            "is not set. It names the stage this app runs on ('production' on production; "
            "'preview', 'staging' or another name elsewhere), and every stage but production "
            "keeps mail away from real people. Set it in the stage's config class or the "
            "environment.",
        )
    if not isinstance(value, str) or not _STAGE.match(value.strip().lower()):
        raise ConfigurationError(
            key, "must be a stage name such as 'production', 'staging' or 'preview'."
        )
    return value.strip().lower()


def _strings(config: Mapping[str, Any], key: str) -> list[Any]:
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


@dataclass(frozen=True)
class AllowedRecipients:
    """Domains (with their subdomains) and addresses the stage guard lets through as given,
    all in Notify's canonical form (:func:`~flask_dmmail.validation.canonical_address`)."""

    domains: frozenset[str] = frozenset()
    addresses: frozenset[str] = frozenset()

    def allows(self, address: str) -> bool:
        """True when ``address`` (any spelling of it) is allowed."""
        canonical = canonical_address(address)
        if canonical in self.addresses:
            return True
        parts = canonical.rpartition("@")[2].split(".")
        return any(".".join(parts[i:]) in self.domains for i in range(len(parts) - 1))


def _allowed_recipients(
    config: Mapping[str, Any], redirects: Mapping[str, str]
) -> AllowedRecipients:
    key = "DM_NOTIFY_ALLOWED_RECIPIENTS"
    domains = set(SIMULATOR_DOMAINS) | set(redirects)
    addresses = {canonical_address(a) for a in SIMULATOR_ADDRESSES}
    for entry in _strings(config, key):
        if not isinstance(entry, str):
            raise ConfigurationError(key, "every entry must be a domain or an email address.")
        if "@" in entry:
            try:
                addresses.add(canonical_address(check_email_address(entry)))
            except DMMailError:
                raise ConfigurationError(
                    key, "an entry with an '@' is not a valid email address."
                ) from None
        else:
            domains.add(_domain_rule(key, entry))
    return AllowedRecipients(frozenset(domains), frozenset(addresses))


def _safe_address(config: Mapping[str, Any]) -> str:
    key = "DM_NOTIFY_SAFE_ADDRESS"
    value = config.get(key) or DEFAULT_SAFE_ADDRESS
    try:
        return check_email_address(value)
    except DMMailError:
        raise ConfigurationError(
            key,
            "must be one valid email address; by default it is Notify's simulate-delivered "
            "address, which is never delivered.",
        ) from None


def _stage_guard(config: Mapping[str, Any]) -> str:
    key = "DM_NOTIFY_STAGE_GUARD"
    value = config.get(key) or "redirect"
    if not isinstance(value, str) or value.strip().lower() not in STAGE_GUARD_MODES:
        raise ConfigurationError(key, "must be 'redirect' or 'refuse'.")
    return value.strip().lower()


def _sanitise(
    config: Mapping[str, Any], templates: Mapping[str, str]
) -> Mapping[str, frozenset[str]]:
    """DM_NOTIFY_SANITISE: template name (or id) -> the personalisation fields whose values
    always get Notify's sanitise_content_for, keyed here by template id."""
    key = "DM_NOTIFY_SANITISE"
    checked: dict[str, frozenset[str]] = {}
    for name, fields in _mapping(config, key).items():
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
    "DM_ENVIRONMENT",
    "DM_NOTIFY_ALLOWED_RECIPIENTS",
    "DM_NOTIFY_STAGE_GUARD",
    "DM_NOTIFY_SAFE_ADDRESS",
    "DM_NOTIFY_SANITISE",
)


def _with_environment(
    config: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], frozenset[str]]:
    """The keys set in the app's config, with the unset ones read from ``environ``; and the
    names of the keys that came from the environment."""
    merged = {key: config[key] for key in ("SECRET_KEY", *KEYS) if key in config}
    from_environment = set()
    for key in KEYS:
        if merged.get(key) is None and environ.get(key):
            merged[key] = environ[key]
            from_environment.add(key)
    return merged, frozenset(from_environment)


def _sandbox(
    config: Mapping[str, Any],
    from_environment: frozenset[str],
    *,
    has_key: bool,
    key_in_config: bool,
    relaxed: bool,
    stage: str,
) -> bool:
    """Whether the embedded sandbox runs.

    - A key in the app's config always wins over DM_MAIL_SANDBOX from the environment.
    - Outside debug and testing, only the app's config can turn the sandbox on (a stray
      environment variable cannot), and never on production.
    - In debug or testing without a key, the sandbox is on unless switched off.
    """
    switch = _bool(config, "DM_MAIL_SANDBOX", None)
    if "DM_MAIL_SANDBOX" in from_environment and (key_in_config or not relaxed):
        switch = None
    if switch is None:
        return not has_key and relaxed
    if switch and not relaxed and stage == PRODUCTION:
        raise ConfigurationError(
            "DM_MAIL_SANDBOX",
            "is on in the production stage (DM_ENVIRONMENT = 'production'): every email would "
            "be dropped by a local sandbox. Remove DM_MAIL_SANDBOX from the production config.",
        )
    return switch


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
    callback_token: str | None = field(repr=False)
    #: Requests per minute bulk sends may use (below the key's 3,000 to leave headroom).
    bulk_rate: float = 2700.0
    #: The stage (DM_ENVIRONMENT), lower-cased; "production" turns the stage guards off.
    stage: str = PRODUCTION
    #: Who the stage guard lets through as given (outside production).
    allowed_recipients: AllowedRecipients = field(default=AllowedRecipients(), repr=False)
    #: "redirect" (to ``safe_address``) or "refuse" what the stage guard stops.
    stage_guard: str = "redirect"
    safe_address: str = field(default=DEFAULT_SAFE_ADDRESS, repr=False)
    #: Template id -> personalisation fields always sent in sanitise_content_for.
    sanitise: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Where the Notify key came from: "config", "environment", or None (no key).
    notify_key_source: str | None = None

    @property
    def production(self) -> bool:
        """True on the production stage, the one stage where the guards are off."""
        return self.stage == PRODUCTION

    @property
    def mailchimp_allow_unlisted_audiences(self) -> bool:
        """Deprecated: the same as :attr:`production` (any audience may be used there)."""
        return self.production

    @property
    def guards_recipients(self) -> bool:
        """True when the stage guard applies to recipients: outside production, whenever mail
        can leave this machine (in sandbox mode nothing does, so every address goes through
        as given and the outbox shows the real recipients)."""
        return not self.production and not self.sandbox

    @property
    def notify_key_name(self) -> str | None:
        """The name part of the Notify key (``name-<service id>-<secret>``): never secret."""
        return self.notify_key[:-74] if self.notify_key else None

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
        config, from_environment = _with_environment(
            app_config, os.environ if environ is None else environ
        )
        relaxed = debug or testing
        stage = _stage(config, debug=debug, testing=testing)
        notify_key = _notify_key(config)
        key_names = {"DM_NOTIFY_KEY", "DM_NOTIFY_API_KEY"}
        key_source = None
        if notify_key is not None:
            in_config = any(config.get(k) for k in key_names - from_environment)
            key_source = "config" if in_config else "environment"
        sandbox = _sandbox(
            config,
            from_environment,
            has_key=notify_key is not None,
            key_in_config=key_source == "config",
            relaxed=relaxed,
            stage=stage,
        )
        if not sandbox and notify_key is None:
            help_text = _TEST_KEY_HELP if relaxed else _KEY_HELP
            raise ConfigurationError(
                "DM_NOTIFY_KEY", f"no Notify API key is set for the stage {stage!r}. {help_text}"
            )
        if _bool(config, "DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES", False) and stage != PRODUCTION:
            raise ConfigurationError(
                "DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES",
                f"is on in the stage {stage!r}. Only production (DM_ENVIRONMENT = 'production') "
                "may use audiences not listed in DM_MAILCHIMP_AUDIENCES, and it needs no "
                "switch for it: remove the key.",
            )
        templates = _templates(config)
        redirects = _redirects(config)
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
            templates=templates,
            redirects=redirects,
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
            callback_token=token,
            bulk_rate=_number(config, "DM_NOTIFY_BULK_RATE", 2700.0, minimum=1),
            stage=stage,
            allowed_recipients=_allowed_recipients(config, redirects),
            stage_guard=_stage_guard(config),
            safe_address=_safe_address(config),
            sanitise=_sanitise(config, templates),
            notify_key_source=key_source,
        )
