"""Every config key, its default and its validation, in one place.

Config is read once, in ``init_app``, from the app's config (config classes, and
environment variables through Flask's dotenv support), checked, and frozen into a
:class:`Settings`. Nothing reads ``app.config`` at send time. The readers of single keys
are in :mod:`flask_dmmail.config.readers`; the stage rules in :mod:`flask_dmmail.config.stages`;
the keys of the Notify budget shared through Redis in :mod:`flask_dmmail.config.scaling`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError
from . import readers, scaling, stages
from .readers import DEFAULT_MAILCHIMP_BASE_URL, DEFAULT_NOTIFY_BASE_URL
from .stages import DEFAULT_SAFE_ADDRESS, PRODUCTION, AllowedRecipients

__all__ = [
    "DEFAULT_MAILCHIMP_BASE_URL",
    "DEFAULT_NOTIFY_BASE_URL",
    "KEYS",
    "PRODUCTION",
    "AllowedRecipients",
    "Settings",
]

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


#: Every key flask-dmmail reads; each is documented in the README's configuration table.
KEYS = (
    "DM_NOTIFY_KEY",
    "DM_NOTIFY_API_KEY",
    "DM_NOTIFY_BASE_URL",
    "DM_NOTIFY_TEMPLATES",
    "DM_NOTIFY_REPLY_TO_IDS",
    "DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS",
    "DM_NOTIFY_TIMEOUT",
    "DM_NOTIFY_RETRIES",
    "DM_NOTIFY_RETRY_BACKOFF",
    "DM_MAIL_SANDBOX",
    "DM_MAIL_SANDBOX_PERSIST",
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
    "DM_MAIL_REDIS_URL",
    "DM_MAIL_REDIS_REQUIRED",
    "DM_NOTIFY_RATE_LIMIT",
    "DM_NOTIFY_BULK_SHARE",
    "DM_NOTIFY_KEY_TYPE",
    "DM_MAIL_CELERY_BROKER_URL",
    "DM_MAIL_QUEUE_RETRIES",
)


#: The API keys: in testing mode only the app's config may set them (see :func:`_with_environment`).
SECRET_KEYS = frozenset({"DM_NOTIFY_KEY", "DM_NOTIFY_API_KEY", "DM_MAILCHIMP_API_KEY"})


def _with_environment(
    config: Mapping[str, Any], environ: Mapping[str, str], *, testing: bool = False
) -> tuple[dict[str, Any], frozenset[str]]:
    """The keys set in the app's config, with the unset ones read from ``environ``; and the
    names of the keys that came from the environment.

    In testing mode the API keys (:data:`SECRET_KEYS`) are never read from ``environ``: a
    developer's key in the shell or a ``.env`` file must not send a test run through real
    Notify or Mailchimp. Only the app's config can."""
    merged = {key: config[key] for key in ("SECRET_KEY", *KEYS) if key in config}
    from_environment = set()
    for key in KEYS:
        if testing and key in SECRET_KEYS:
            continue
        if merged.get(key) is None and environ.get(key):
            merged[key] = environ[key]
            from_environment.add(key)
    return merged, frozenset(from_environment)


def _sandbox_persist(config: Mapping[str, Any], *, testing: bool) -> bool:
    """DM_MAIL_SANDBOX_PERSIST, by default on except in testing mode."""
    value = readers.read_bool(config, "DM_MAIL_SANDBOX_PERSIST", None)
    return not testing if value is None else value


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
    #: Requests per minute bulk sends may use (below the key's 3,000 to leave headroom, or
    #: all of it with the shared budget, whose reserve leaves the headroom).
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
    #: Reply-to name -> reply-to address id (DM_NOTIFY_REPLY_TO_IDS).
    reply_to_ids: Mapping[str, str] = field(default_factory=dict)
    #: DM_MAIL_REDIS_URL: the Redis of the shared Notify budget (None: none). May hold a
    #: password: never logged.
    redis_url: str | None = field(default=None, repr=False)
    #: DM_MAIL_REDIS_REQUIRED: no send without the shared budget (on in production).
    redis_required: bool = False
    #: DM_NOTIFY_RATE_LIMIT: the service's per-minute limit (Notify's 3000 unless it set another).
    rate_limit: float = 3000.0
    #: DM_NOTIFY_BULK_SHARE: the share of the shared bucket bulk work may empty.
    bulk_share: float = scaling.DEFAULT_BULK_SHARE
    #: DM_NOTIFY_KEY_TYPE: the Notify key's type (live, team, test), which names its bucket.
    notify_key_type: str = "live"
    #: Whether the embedded sandbox lives in the app's instance folder, shared by every
    #: process of the app and kept across restarts (DM_MAIL_SANDBOX_PERSIST; default: on
    #: except in testing mode).
    sandbox_persist: bool = False
    #: The broker of the Celery app the extension makes for queued sends (None: none made).
    celery_broker_url: str | None = field(default=None, repr=False)
    #: How often a queued email whose send failed transiently is queued again.
    queue_retries: int = 5

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
        Flask's dotenv support puts the values of a ``.env`` file. In testing mode the API
        keys are read from the app's config only.
        """
        config, from_environment = _with_environment(
            app_config, os.environ if environ is None else environ, testing=testing
        )
        relaxed = debug or testing
        stage = stages.stage(config, debug=debug, testing=testing)
        notify_key = readers.notify_key(config)
        key_names = {"DM_NOTIFY_KEY", "DM_NOTIFY_API_KEY"}
        key_source = None
        if notify_key is not None:
            in_config = any(config.get(k) for k in key_names - from_environment)
            key_source = "config" if in_config else "environment"
        sandbox = stages.sandbox_on(
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
        if (
            readers.read_bool(config, "DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES", False)
            and stage != PRODUCTION
        ):
            raise ConfigurationError(
                "DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES",
                f"is on in the stage {stage!r}. Only production (DM_ENVIRONMENT = 'production') "
                "may use audiences not listed in DM_MAILCHIMP_AUDIENCES, and it needs no "
                "switch for it: remove the key.",
            )
        templates = readers.templates(config)
        redirects = readers.redirects(config)
        base_url = config.get("DM_NOTIFY_BASE_URL") or DEFAULT_NOTIFY_BASE_URL
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigurationError("DM_NOTIFY_BASE_URL", "must be an http(s) URL.")
        mc_base = config.get("DM_MAILCHIMP_BASE_URL") or None
        if mc_base is not None and (
            not isinstance(mc_base, str) or not mc_base.startswith(("http://", "https://"))
        ):
            raise ConfigurationError("DM_MAILCHIMP_BASE_URL", "must be an http(s) URL ending /3.0.")
        redis_url = scaling.redis_url(config)
        rate_limit = scaling.rate_limit(config)
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
            timeout=readers.read_number(config, "DM_NOTIFY_TIMEOUT", 15.0, minimum=0.1),
            retries=readers.read_whole(config, "DM_NOTIFY_RETRIES", 3),
            retry_backoff=readers.read_number(config, "DM_NOTIFY_RETRY_BACKOFF", 0.5, minimum=0),
            sandbox=sandbox,
            sandbox_seed=readers.sandbox_seed(config),
            hash_key=readers.hash_key(config, relaxed=relaxed or sandbox),
            mailchimp_api_key=readers.mailchimp_key(config),
            mailchimp_base_url=mc_base.rstrip("/") if isinstance(mc_base, str) else None,
            audiences=readers.audiences(config),
            mailchimp_timeout=readers.read_number(
                config, "DM_MAILCHIMP_TIMEOUT", 30.0, minimum=0.1
            ),
            mailchimp_retries=readers.read_whole(config, "DM_MAILCHIMP_RETRIES", 3),
            mailchimp_retry_backoff=readers.read_number(
                config, "DM_MAILCHIMP_RETRY_BACKOFF", 0.5, minimum=0
            ),
            mailchimp_webhook_token=readers.mailchimp_webhook_token(config),
            callback_token=token,
            bulk_rate=readers.read_number(
                config,
                "DM_NOTIFY_BULK_RATE",
                scaling.default_bulk_rate(rate_limit, shared=redis_url is not None),
                minimum=1,
            ),
            stage=stage,
            allowed_recipients=stages.allowed_recipients(config, redirects),
            stage_guard=stages.stage_guard(config),
            safe_address=stages.safe_address(config),
            sanitise=readers.sanitise(config, templates),
            notify_key_source=key_source,
            reply_to_ids=readers.reply_to_ids(config),
            redis_url=redis_url,
            redis_required=scaling.redis_required(config, production=stage == PRODUCTION),
            rate_limit=rate_limit,
            bulk_share=scaling.bulk_share(config),
            notify_key_type=scaling.key_type(config),
            sandbox_persist=_sandbox_persist(config, testing=testing),
            celery_broker_url=readers.broker_url(config, "DM_MAIL_CELERY_BROKER_URL"),
            queue_retries=readers.read_whole(config, "DM_MAIL_QUEUE_RETRIES", 5),
        )
