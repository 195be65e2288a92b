"""The stage rules: which stage this app runs on (``DM_ENVIRONMENT``), who the stage guard
lets through outside production, where it sends the rest, and whether the embedded sandbox
runs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, DMMailError
from ..validation import canonical_address, check_email_address
from .readers import domain_rule, read_bool, read_strings

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


def stage(config: Mapping[str, Any], *, debug: bool, testing: bool) -> str:
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


def allowed_recipients(
    config: Mapping[str, Any], redirects: Mapping[str, str]
) -> AllowedRecipients:
    key = "DM_NOTIFY_ALLOWED_RECIPIENTS"
    domains = set(SIMULATOR_DOMAINS) | set(redirects)
    addresses = {canonical_address(a) for a in SIMULATOR_ADDRESSES}
    for entry in read_strings(config, key):
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
            domains.add(domain_rule(key, entry))
    return AllowedRecipients(frozenset(domains), frozenset(addresses))


def safe_address(config: Mapping[str, Any]) -> str:
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


def stage_guard(config: Mapping[str, Any]) -> str:
    key = "DM_NOTIFY_STAGE_GUARD"
    value = config.get(key) or "redirect"
    if not isinstance(value, str) or value.strip().lower() not in STAGE_GUARD_MODES:
        raise ConfigurationError(key, "must be 'redirect' or 'refuse'.")
    return value.strip().lower()


def sandbox_on(
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
    switch = read_bool(config, "DM_MAIL_SANDBOX", None)
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
