"""The send pipeline: one email from its checks to its outcome.

Every email (``Mailer.send``, bulk sends, the CLI) goes through :class:`SendPipeline`, in
this order:

1. **checks and redirect** (:meth:`SendPipeline.prepare`, :func:`redirect_for`): every check
   that needs no network, the derived reference, and where the email goes;
2. **at most once** (``allow_resend=False``): a lock per email, and a look-up in this
   process's record and in Notify before it is sent;
3. **posting with retries** (:meth:`SendPipeline.deliver`, :func:`post_with_retries`):
   transient errors are retried, and after an ambiguous failure the reference is looked up
   before anything is posted again; with a shared budget (``DM_MAIL_REDIS_URL``,
   :mod:`flask_dmmail.budget`) each post first takes a token from it, and a 429 drains it;
4. **the outcome**: sent, skipped or failed, remembered for step 2 and reported to the
   :class:`~flask_dmmail.announce.Announcer` (the log line and the signal).

The Notify transport itself (the gateway, the error mapping, the result types) is
:mod:`flask_dmmail.notify`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .announce import Announcer
from .config import Settings
from .errors import (
    DailyLimitError,
    DMMailError,
    NotifyError,
    NotifyUnavailableError,
    RateLimitError,
    RecipientNotAllowedOnStageError,
    RedisUnavailableError,
)
from .notify import (
    NotificationStatus,
    NotifyGateway,
    PreparedEmail,
    SentEmail,
    sent_email_from_response,
    sent_email_from_status,
)
from .references import AddressHasher, SentReferences
from .replyto import resolve_reply_to
from .retry import backoff_delay
from .validation import (
    canonical_domain,
    check_email_address,
    check_one_click_unsubscribe_url,
    check_personalisation,
    check_reference,
    check_sanitise_content_for,
    check_scheduled_for,
    check_template_name,
)

if TYPE_CHECKING:
    from .budget import SharedBudget

__all__ = ["RetryHook", "SendOutcome", "SendPipeline", "post_with_retries", "redirect_for"]

#: Called before each retry of a post: ``hook(error, attempt, delay)``. It may raise to stop
#: the send (bulk sends do, to stop a run).
RetryHook = Callable[[NotifyError, int, float], None]

logger = logging.getLogger("flask_dmmail")

_LOOKUP_WINDOW = timedelta(seconds=60)
#: After a request timed out, wait this long (at most) before looking its reference up,
#: so that Notify has finished handling it: the wait is the client timeout, capped here.
_SETTLE_CAP = 10.0


def _sent_key(email: PreparedEmail) -> str:
    """What makes one email for allow_resend=False: its reference, recipient and template."""
    return f"{email.reference}\n{email.to_hash}\n{email.template_id}"


# -- 1. checks and redirect ----------------------------------------------------------------------


def redirect_for(address: str, redirects: Mapping[str, str]) -> str | None:
    """The address to send to instead of ``address``, or None when no rule matches.

    A rule for ``example.com`` matches that domain and its subdomains in any spelling Notify
    delivers to it: whatever the case, surrounding whitespace, a trailing dot, zero-width
    characters, full-width letters or ideographic full stops, or the Unicode or punycode form
    of the domain (both sides are compared IDNA-encoded). ``notexample.com`` does not match.

    :param address: the recipient's address.
    :param redirects: DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS (domain → address).
    """
    if not redirects or "@" not in address:
        return None
    domain = canonical_domain(address.rpartition("@")[2])
    parts = domain.split(".")
    for start in range(len(parts) - 1):
        target = redirects.get(".".join(parts[start:]))
        if target is not None:
            return target
    return None


class SendPipeline:
    """The steps of one send, from the checks to the outcome, for one app's settings.

    Reach it as ``app.extensions["dmmail"].pipeline``; it is safe to share between threads.

    :param settings: the app's :class:`~flask_dmmail.config.Settings`.
    :param hasher: derives references and address hashes.
    :param gateway: the :class:`~flask_dmmail.notify.NotifyGateway` that posts and looks up.
    :param announce: told every outcome (:class:`~flask_dmmail.announce.Announcer`).
    :param budget: the Notify budget shared by every process
        (:class:`~flask_dmmail.budget.SharedBudget`), or None (``DM_MAIL_REDIS_URL`` unset).
    """

    def __init__(
        self,
        settings: Settings,
        hasher: AddressHasher,
        gateway: NotifyGateway,
        announce: Announcer,
        budget: SharedBudget | None = None,
    ) -> None:
        self.settings = settings
        self.hasher = hasher
        self.gateway = gateway
        self.announce = announce
        self.budget = budget
        #: What this process has sent, and a lock per email being sent (``allow_resend=False``).
        self.sent_references = SentReferences()

    def __repr__(self) -> str:
        return f"<SendPipeline gateway={self.gateway!r}>"

    def prepare(
        self,
        to: object,
        template: object,
        personalisation: object = None,
        *,
        reference: object = None,
        reply_to_id: object = None,
        one_click_unsubscribe_url: object = None,
        scheduled_for: object = None,
        sanitise_content_for: object = None,
    ) -> PreparedEmail:
        """Run every check that needs no network; raise an InvalidInputError on the first failure.

        Then work out where the email goes: a domain redirect
        (DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS) first; outside production (and outside sandbox
        mode, where nothing leaves the machine), an address the stage does not allow
        (DM_NOTIFY_ALLOWED_RECIPIENTS) goes to DM_NOTIFY_SAFE_ADDRESS, or is refused with
        :class:`~flask_dmmail.errors.RecipientNotAllowedOnStageError` when
        DM_NOTIFY_STAGE_GUARD is "refuse".

        The parameters are those of :meth:`flask_dmmail.Mailer.send`, but their values may be
        of any type (rows read from a file, arguments from a queue): the checks refuse the
        wrong ones. Nothing is announced (:meth:`send` announces a refusal).
        """
        settings = self.settings
        hasher = self.hasher
        address = check_email_address(to)
        template_id = check_template_name(template, settings.templates)
        values = check_personalisation(personalisation)
        ref = (
            check_reference(reference)
            if reference is not None
            else hasher.reference(address, template_id, values)
        )
        reply_to = (
            resolve_reply_to(reply_to_id, settings.reply_to_ids)
            if reply_to_id is not None
            else None
        )
        unsubscribe = (
            check_one_click_unsubscribe_url(one_click_unsubscribe_url)
            if one_click_unsubscribe_url is not None
            else None
        )
        when = check_scheduled_for(scheduled_for) if scheduled_for is not None else None
        sanitise = check_sanitise_content_for(sanitise_content_for)
        configured = settings.sanitise.get(template_id)
        if configured:
            sanitise = tuple(sorted(set(sanitise) | configured))
        target = redirect_for(address, settings.redirects)
        redirected_by = "domain" if target is not None else None
        if (
            target is None
            and settings.guards_recipients
            and not settings.allowed_recipients.allows(address)
        ):
            if settings.stage_guard == "refuse":
                raise RecipientNotAllowedOnStageError(
                    f"The recipient is not in DM_NOTIFY_ALLOWED_RECIPIENTS, so the stage "
                    f"{settings.stage!r} does not send to it (DM_NOTIFY_STAGE_GUARD = 'refuse'). "
                    "Send to an allowed address or domain, or add it to "
                    "DM_NOTIFY_ALLOWED_RECIPIENTS."
                )
            target, redirected_by = settings.safe_address, "stage"
        return PreparedEmail(
            to=address,
            sent_to=target or address,
            redirected=target is not None,
            to_hash=hasher.hash_address(address),
            template_id=template_id,
            personalisation=values,
            reference=ref,
            reply_to_id=reply_to,
            one_click_unsubscribe_url=unsubscribe,
            scheduled_for=when,
            redirected_by=redirected_by,
            sanitise_content_for=sanitise,
        )

    def send(
        self,
        to: object,
        template: object,
        personalisation: object = None,
        *,
        reference: object = None,
        reply_to_id: object = None,
        one_click_unsubscribe_url: object = None,
        scheduled_for: object = None,
        allow_resend: bool = True,
        sanitise_content_for: object = None,
    ) -> SentEmail | None:
        """The whole path: :meth:`prepare` (announcing a refusal), then :meth:`send_prepared`.

        The parameters and the result are those of :meth:`flask_dmmail.Mailer.send`; the
        values may be of any type, as for :meth:`prepare`.
        """
        email = self.prepare_announced(
            to,
            template,
            personalisation,
            reference=reference,
            reply_to_id=reply_to_id,
            one_click_unsubscribe_url=one_click_unsubscribe_url,
            scheduled_for=scheduled_for,
            sanitise_content_for=sanitise_content_for,
        )
        return self.send_prepared(email, allow_resend=allow_resend)

    def prepare_announced(
        self, to: object, template: object, personalisation: object = None, **options: object
    ) -> PreparedEmail:
        """:meth:`prepare` (the same arguments), announcing a refusal as a failed send: the
        first step of :meth:`send` and of a queued send."""
        try:
            return self.prepare(to, template, personalisation, **options)
        except DMMailError as error:
            self.announce.failed(error, None, attempt=0)
            raise

    # -- 2. at most once ---------------------------------------------------------------------

    def send_prepared(
        self,
        email: PreparedEmail,
        *,
        allow_resend: bool = True,
        on_retry: RetryHook | None = None,
    ) -> SentEmail | None:
        """Send an email made by :meth:`prepare` (the second half of :meth:`send`).

        :param email: the :class:`~flask_dmmail.notify.PreparedEmail` to send.
        :param allow_resend: False to skip (and return None) when this process has sent it,
            or Notify has a notification of its reference, address and template that has
            not failed.
        :param on_retry: called as ``on_retry(error, attempt, delay)`` before each retry
            (bulk sends use it to slow down on a 429 and to pace retries).
        """
        if allow_resend:
            return self.deliver(email, on_retry)
        key = _sent_key(email)
        with self.sent_references.claim(key):
            if self._already_sent(email, key):
                self.announce.skipped(email)
                return None
            return self.deliver(email, on_retry)

    def _already_sent(self, email: PreparedEmail, key: str) -> bool:
        """True when this process sent the email, or Notify has a notification of its
        reference, address and template that has not failed. (A reference alone is not
        enough: Notify lets a whole batch share one.)"""
        if key in self.sent_references:
            return True
        try:
            found = self.gateway.find_reference(email.reference, include_failed=False, email=email)
        except NotifyError as error:
            self.announce.failed(error, email, attempt=0)
            raise
        if found is not None:
            self.sent_references.add(key)
            return True
        return False

    # -- 3. posting with retries -------------------------------------------------------------

    def deliver(
        self, email: PreparedEmail, on_retry: RetryHook | None = None, *, paced: bool = False
    ) -> SentEmail:
        """Post ``email`` with retries (no check of whether it was sent before) and announce
        the outcome; raise the :class:`~flask_dmmail.errors.NotifyError` of a failure.

        With a shared budget, each post first takes a token from it (waiting up to
        ``DM_NOTIFY_TIMEOUT`` seconds for one, then posting anyway), and a 429 drains it.

        :param email: the :class:`~flask_dmmail.notify.PreparedEmail` to post.
        :param on_retry: as for :meth:`send_prepared`.
        :param paced: True when the caller takes the tokens itself (a bulk run's limiter).
        :raises ~flask_dmmail.errors.RedisUnavailableError: the shared budget's Redis did
            not answer (``DM_MAIL_REDIS_REQUIRED``); nothing was posted since the last
            look-up of the reference, so sending again is safe.
        """
        started = time.perf_counter()
        budget = None if paced else self.budget

        def retrying(error: NotifyError, attempt: int, delay: float) -> None:
            self.announce.retrying(error, email, attempt=attempt, delay=delay)
            if budget is not None and isinstance(error, RateLimitError):
                budget.drain()
            if on_retry is not None:
                on_retry(error, attempt, delay)

        try:
            outcome = post_with_retries(
                self.gateway,
                email,
                retries=self.settings.retries,
                backoff=self.settings.retry_backoff,
                on_retry=retrying,
                before_post=None if budget is None else lambda: self._take_token(budget),
            )
        except (NotifyError, RedisUnavailableError) as error:
            if isinstance(error, RateLimitError) and budget is not None:
                budget.drain()
            self.announce.failed(error, email, attempt=error.attempts)
            raise
        self._sent(
            email,
            outcome.email,
            attempt=outcome.attempts,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            recovered=outcome.recovered,
        )
        return outcome.email

    def _take_token(self, budget: SharedBudget) -> None:
        """Take a transactional token from the shared budget before a post."""
        from .budget import TRANSACTIONAL

        if not budget.take(TRANSACTIONAL, max_wait=self.settings.timeout):
            logger.warning(
                "No token in the shared Notify budget within %.0f s (DM_NOTIFY_TIMEOUT): "
                "posting anyway",
                self.settings.timeout,
            )

    def find_reference(self, reference: str) -> NotificationStatus | None:
        """Notify's newest notification with ``reference``, whatever its status, or None.

        One request (no retries); raises a :class:`~flask_dmmail.errors.NotifyError`.

        :param reference: the reference to look up.
        """
        return self.gateway.find_reference(reference)

    # -- 4. the outcome ----------------------------------------------------------------------

    def recovered(self, email: PreparedEmail, found: NotificationStatus) -> SentEmail:
        """Take ``found`` as the outcome of ``email``: a post that failed as far as the
        sender knows, but that Notify stored. Remembered and announced as sent.

        :param email: the :class:`~flask_dmmail.notify.PreparedEmail` that was posted.
        :param found: Notify's notification of it (e.g. from :meth:`find_reference`).
        """
        sent = sent_email_from_status(email, found, self.gateway.base_url)
        self._sent(email, sent, attempt=None, duration_ms=None, recovered=True)
        return sent

    def _sent(
        self,
        email: PreparedEmail,
        sent: SentEmail,
        *,
        attempt: int | None,
        duration_ms: float | None,
        recovered: bool,
    ) -> None:
        """Remember and announce an email Notify has (posted now, or found stored)."""
        self.sent_references.add(_sent_key(email))
        self.announce.sent(
            email, sent, attempt=attempt, duration_ms=duration_ms, recovered=recovered
        )


# -- posting with retries, never twice -----------------------------------------------------------


@dataclass
class SendOutcome:
    """What :func:`post_with_retries` did: the email, how many attempts, and whether it
    was found already stored after an ambiguous failure."""

    email: SentEmail
    attempts: int
    recovered: bool


def post_with_retries(
    gateway: NotifyGateway,
    email: PreparedEmail,
    *,
    retries: int,
    backoff: float,
    on_retry: RetryHook | None = None,
    sleep: Callable[[float], None] = time.sleep,
    before_post: Callable[[], None] | None = None,
) -> SendOutcome:
    """Post one email, retrying transient errors, never sending it twice.

    After an ambiguous failure (timeout, dropped connection, 5xx) the reference is looked
    up before anything is sent again; if Notify has it, that notification is the result.
    After a timeout the lookup waits at least the client timeout (capped at 10 s), so a
    request Notify is still handling has time to be stored. A DailyLimitError is not
    retried (it lasts until midnight UTC).

    :param gateway: posts and looks up.
    :param email: the :class:`~flask_dmmail.notify.PreparedEmail` to post.
    :param retries: how many times a transient error is retried (DM_NOTIFY_RETRIES).
    :param backoff: the base of the exponential backoff, in seconds.
    :param on_retry: called before each retry, as for
        :meth:`SendPipeline.send_prepared`.
    :param sleep: waits between attempts.
    :param before_post: called just before each post (after any look-up): the shared
        budget's token. What it raises ends the send, with ``attempts`` set to the posts
        made.
    """
    settle = min(gateway.timeout, _SETTLE_CAP)
    since = datetime.now(UTC) - _LOOKUP_WINDOW
    secrets = email.secrets()
    attempt = 0
    ambiguous = False
    while True:
        attempt += 1
        try:
            if ambiguous:
                found = gateway.find_reference(email.reference, since=since, email=email)
                if found is not None:
                    return SendOutcome(
                        sent_email_from_status(email, found, gateway.base_url), attempt, True
                    )
                ambiguous = False
            if before_post is not None:
                try:
                    before_post()
                except RedisUnavailableError as error:
                    error.attempts = attempt - 1
                    raise
            body = gateway.post_email(email.payload(), secrets)
            return SendOutcome(sent_email_from_response(email, body), attempt, False)
        except NotifyError as error:
            if isinstance(error, NotifyUnavailableError):
                ambiguous = True
            if not error.transient or isinstance(error, DailyLimitError) or attempt > retries:
                if ambiguous:
                    if _timed_out(error):
                        sleep(settle)
                    found = _last_lookup(gateway, email, since)
                    if found is not None:
                        return SendOutcome(
                            sent_email_from_status(email, found, gateway.base_url), attempt, True
                        )
                error.attempts = attempt
                raise
            delay = backoff_delay(attempt, backoff)
            if _timed_out(error):
                delay = max(delay, settle)
            if on_retry is not None:
                on_retry(error, attempt, delay)
            sleep(delay)


def _timed_out(error: NotifyError) -> bool:
    return isinstance(error, NotifyUnavailableError) and error.timed_out


def _last_lookup(
    gateway: NotifyGateway, email: PreparedEmail, since: datetime
) -> NotificationStatus | None:
    try:
        return gateway.find_reference(email.reference, since=since, email=email)
    except DMMailError:
        return None
