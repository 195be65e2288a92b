"""The rules by which Mailchimp refuses an address that is well formed: it "looks fake or
invalid", or it "has signed up to a lot of lists very recently".

Both answer 400 "Invalid Resource" with the detail Mailchimp uses (the reference notes,
``mailchimp-api.md`` §3: ``foo@example.com`` was refused live). How Mailchimp decides is not
published, so ``AddressRules`` here is a documented stand-in, on by default:

* **looks fake**: an address at one of :data:`DEFAULT_FAKE_DOMAINS` or a subdomain of one
  (``example`` and ``test`` under any public suffix: ``example.com``, ``test.org``,
  ``dm.example.gov.uk``), at a reserved or local top-level domain (:data:`FAKE_TLDS`), or one
  of the exact addresses a seed names;
* **signed up to a lot of lists very recently**: an address that a seed names as such, or that
  was signed up (added as subscribed or pending) to the state's ``signup_limit`` other
  audiences of the account within its ``signup_window`` seconds.

Addresses at any other domain pass, so tests use :func:`member_address` (at
:data:`MEMBER_DOMAIN`) for members that must be accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from . import problems

if TYPE_CHECKING:
    from .state import MailchimpState

__all__ = [
    "DEFAULT_FAKE_DOMAINS",
    "FAKE_TLDS",
    "MEMBER_DOMAIN",
    "AddressRules",
    "domain_matches",
    "member_address",
]

#: Domains whose addresses "look fake", with their subdomains. ``name.*`` stands for ``name``
#: under any public suffix (``example.com``, ``example.gov.uk``, ``test.co.uk``): RFC 2606's
#: example domains and the ``test`` domains people type.
DEFAULT_FAKE_DOMAINS: Final = frozenset({"example.*", "test.*"})
#: Top-level domains that never deliver mail: RFC 2606's reserved names, and the local ones
#: (RFC 6762 ``.local``, ICANN's ``.internal``).
FAKE_TLDS: Final = (".test", ".example", ".invalid", ".localhost", ".local", ".internal")
#: The domain of :func:`member_address`: the Digital Marketplace's own, which Mailchimp accepts.
MEMBER_DOMAIN: Final = "digitalmarketplace.service.gov.uk"


def member_address(name: str = "member") -> str:
    """An address the sandbox's Mailchimp accepts as a member (``name@`` :data:`MEMBER_DOMAIN`);
    tests use it where an address must not look fake."""
    return f"{name}@{MEMBER_DOMAIN}"


def _domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower().rstrip(".")


def _public_suffix(labels: list[str]) -> bool:
    """Whether ``labels`` look like a public suffix: a top-level domain (``com``) or a
    second-level one under a country's (``gov.uk``, ``co.nz``, ``com.au``)."""
    if len(labels) == 1:
        return True
    return len(labels) == 2 and len(labels[1]) == 2 and len(labels[0]) <= 4


def domain_matches(domain: str, entry: str) -> bool:
    """Whether ``domain`` is ``entry`` or a subdomain of it (``entry`` ``name.*``: ``name``
    under any public suffix)."""
    if entry.endswith(".*"):
        name = entry[:-2]
        labels = domain.split(".")
        return any(
            label == name and _public_suffix(labels[i + 1 :]) for i, label in enumerate(labels)
        )
    return domain == entry or domain.endswith("." + entry)


class AddressRules:
    """The "looks fake" and "too many recent signups" rules; shares the state's lock.

    :param state: the :class:`~flask_dmmail.sandbox.mailchimp.state.MailchimpState` it belongs to
        (its lock, clock, ``signup_limit`` and ``signup_window``).
    """

    def __init__(self, state: MailchimpState) -> None:
        self._state = state
        self._lock = state.lock
        self.reset()

    def reset(self) -> None:
        """Both rules on, the default domains, no seeded addresses, no signups counted."""
        with self._lock:
            self._fake_enabled = True
            self._fake_domains: frozenset[str] = DEFAULT_FAKE_DOMAINS
            self._fake_addresses: frozenset[str] = frozenset()
            self._busy: frozenset[str] = frozenset()
            self._signups: dict[str, dict[str, float]] = {}

    # ----------------------------------------------------------------- settings

    def set_fake_rule(
        self,
        enabled: bool = True,
        *,
        domains: Iterable[str] | None = None,
        addresses: Iterable[str] | None = None,
    ) -> None:
        """Switch the "looks fake or invalid" rule (on by default); ``domains`` replaces the
        refused domains (default :data:`DEFAULT_FAKE_DOMAINS`; subdomains count too), and
        ``addresses`` adds exact addresses. The reserved top-level domains always count."""
        with self._lock:
            self._fake_enabled = enabled
            if domains is not None:
                self._fake_domains = frozenset(d.lower().lstrip("@").rstrip(".") for d in domains)
            if addresses is not None:
                self._fake_addresses = frozenset(a.lower() for a in addresses)

    def set_busy_addresses(self, addresses: Iterable[str]) -> None:
        """Addresses that "signed up to a lot of lists very recently" (elsewhere on Mailchimp):
        each new signup of one is refused."""
        with self._lock:
            self._busy = frozenset(a.lower() for a in addresses)

    # ----------------------------------------------------------------- checks

    def looks_fake(self, email: str) -> bool:
        """Whether the "looks fake or invalid" rule refuses ``email``."""
        if not self._fake_enabled:
            return False
        lowered = email.lower()
        domain = _domain(lowered)
        if lowered in self._fake_addresses or domain.endswith(FAKE_TLDS):
            return True
        return any(domain_matches(domain, entry) for entry in self._fake_domains)

    def check_signup(self, email: str, list_id: str) -> None:
        """Refuse signing ``email`` up to ``list_id`` when it "has signed up to a lot of lists
        very recently"; call before adding a member as subscribed or pending."""
        lowered = email.lower()
        if lowered in self._busy:
            raise problems.too_many_signups(email)
        limit = self._state.signup_limit
        if limit is None:
            return
        since = self._state.clock() - self._state.signup_window
        recent = self._signups.get(lowered, {})
        others = [lid for lid, when in recent.items() if lid != list_id and when >= since]
        if len(others) >= limit:
            raise problems.too_many_signups(email)

    def record_signup(self, email: str, list_id: str) -> None:
        """Count a signup of ``email`` to ``list_id`` (now)."""
        self._signups.setdefault(email.lower(), {})[list_id] = self._state.clock()
