"""The account's verified sending domains: ``/verified-domains`` (list, add, get, delete,
``actions/verify``), and the check a campaign's from-address must pass to be sent.

Mailchimp sends a campaign only from an address at a domain the account has verified; from any
other domain the send checklist shows an error and a send answers "Your Campaign is not ready
to send." (mailchimp-api.md §3: an unverified from-address is one recorded cause). A domain is
added with an address at it, which gets a code by email; posting the code verifies it. The
object's fields are the API reference's (``domain``, ``verified``, ``authenticated``,
``verification_email``, ``verification_sent``; docs.rs ``mailchimp_api::types::VerifiedDomains``
and the client's ``verified_domains_api``).

The sandbox's account starts with :data:`DEFAULT_VERIFIED_DOMAINS` (the Digital
Marketplace's, which its default audiences send from); a seed's ``verified_domains`` replaces
them. Nobody reads the sandbox's verification email, so tests verify a domain with
:meth:`VerifiedDomainStore.verify` (as the person with the code would) or read the code from
:meth:`VerifiedDomainStore.verification_code`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from . import problems
from .models import iso
from .problems import MailchimpProblem
from .serialise import collection_links

if TYPE_CHECKING:
    from .state import MailchimpState

__all__ = ["DEFAULT_VERIFIED_DOMAINS", "VerifiedDomainStore", "address_domain"]

#: The domains the sandbox's account has verified when it starts.
DEFAULT_VERIFIED_DOMAINS: Final = ("digitalmarketplace.service.gov.uk",)
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def address_domain(address: str) -> str:
    """The lower-cased domain of an address (``""`` when it has none)."""
    return address.rpartition("@")[2].strip().lower().rstrip(".") if "@" in address else ""


@dataclass(slots=True)
class _Domain:
    domain: str
    verified: bool
    verification_email: str = ""
    verification_sent: float | None = None
    code: str = ""


class VerifiedDomainStore:
    """The account's sending domains; shares the state's lock.

    :param state: the :class:`~flask_dmmail.sandbox.mailchimp.state.MailchimpState` it belongs to.
    """

    def __init__(self, state: MailchimpState) -> None:
        self._state = state
        self._lock = state.lock
        self.reset()

    def reset(self) -> None:
        """Only :data:`DEFAULT_VERIFIED_DOMAINS`, verified."""
        self.set_verified(DEFAULT_VERIFIED_DOMAINS)

    def set_verified(self, domains: Iterable[str]) -> None:
        """The account's domains become exactly ``domains``, all verified (ValueError for a
        name that is not a domain)."""
        chosen = [d.strip().lower().rstrip(".") for d in domains]
        bad = [d for d in chosen if not _DOMAIN.match(d)]
        if bad:
            raise ValueError(f"seed: mailchimp.verified_domains: not a domain: {bad[0]!r}")
        with self._lock:
            self._domains = {d: _Domain(d, verified=True) for d in chosen}

    def is_verified(self, domain: str) -> bool:
        """Whether the account may send from addresses at ``domain``."""
        with self._lock:
            entry = self._domains.get(domain.lower())
            return entry is not None and entry.verified

    def verification_code(self, domain: str) -> str:
        """The code the verification email for ``domain`` carried (KeyError if none was
        sent)."""
        with self._lock:
            entry = self._domains.get(domain.lower())
            if entry is None or not entry.code:
                raise KeyError(domain)
            return entry.code

    def verify(self, domain: str) -> None:
        """Verify ``domain`` as the person with the emailed code would (adds it if new)."""
        with self._lock:
            key = domain.lower()
            entry = self._domains.setdefault(key, _Domain(key, verified=False))
            entry.verified = True

    # ----------------------------------------------------------------- the API

    def _json(self, entry: _Domain, base: str) -> dict[str, Any]:
        href = f"{base}/verified-domains/{entry.domain}"
        return {
            "domain": entry.domain,
            "verified": entry.verified,
            "authenticated": False,
            "verification_email": entry.verification_email,
            "verification_sent": iso(entry.verification_sent),
            "_links": [
                {"rel": "self", "href": href, "method": "GET"},
                {"rel": "delete", "href": href, "method": "DELETE"},
                {"rel": "verify", "href": f"{href}/actions/verify", "method": "POST"},
            ],
        }

    def _entry(self, domain: str) -> _Domain:
        entry = self._domains.get(domain.lower())
        if entry is None:
            raise problems.not_found()
        return entry

    def list_domains(self, base: str) -> dict[str, Any]:
        """GET /verified-domains."""
        with self._lock:
            domains = [self._json(e, base) for e in self._domains.values()]
            return {
                "domains": domains,
                "total_items": len(domains),
                "_links": collection_links(f"{base}/verified-domains"),
            }

    def get_domain(self, domain: str, base: str) -> dict[str, Any]:
        """GET /verified-domains/{domain_name}."""
        with self._lock:
            return self._json(self._entry(domain), base)

    def add_domain(self, body: Any, base: str) -> dict[str, Any]:
        """POST /verified-domains ``{verification_email}``: the address's domain, unverified,
        and a code "sent" to the address."""
        body = problems.require_object(body)
        if "verification_email" not in body:
            raise problems.required_fields("verification_email")
        email = self._state.member_store.check_email(body["verification_email"])
        domain = address_domain(email)
        with self._lock:
            if domain in self._domains:
                # Mailchimp's wording here is not recorded (docs/sandbox.md).
                raise MailchimpProblem(
                    400, "Invalid Resource", f"The domain {domain} is already on this account."
                )
            entry = _Domain(
                domain,
                verified=False,
                verification_email=email,
                verification_sent=self._state.clock(),
                code=f"{secrets.randbelow(1_000_000):06d}",
            )
            self._domains[domain] = entry
            return self._json(entry, base)

    def delete_domain(self, domain: str) -> None:
        """DELETE /verified-domains/{domain_name}."""
        with self._lock:
            del self._domains[self._entry(domain).domain]

    def submit_code(self, domain: str, body: Any, base: str) -> dict[str, Any]:
        """POST /verified-domains/{domain_name}/actions/verify ``{code}``."""
        body = problems.require_object(body)
        if "code" not in body:
            raise problems.required_fields("code")
        with self._lock:
            entry = self._entry(domain)
            if not entry.verified:
                if not entry.code or body["code"] != entry.code:
                    # Mailchimp's wording here is not recorded (docs/sandbox.md).
                    raise problems.invalid_resource(
                        errors=[{"field": "code", "message": "The verification code is wrong."}]
                    )
                entry.verified = True
            return self._json(entry, base)
