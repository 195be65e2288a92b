"""The sandbox's root state: the Notify service and the Mailchimp account side by side.

:class:`SandboxState` holds :attr:`~SandboxState.notify` (a
:class:`~flask_dmmail.sandbox.notify_state.NotifyState`) and :attr:`~SandboxState.mailchimp`
(a :class:`~flask_dmmail.sandbox.mailchimp.MailchimpState`); reset, seed and close fan out
to both. It also holds the fault configuration, because the fault layer covers the paths of
both APIs. Every control action of the ``/_sandbox/`` endpoints is a method here, so
in-process users need no HTTP. Nothing is written to disk.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .faults import FaultConfig
from .lifecycle import StatusListener
from .mailchimp import MailchimpState

# The models were defined here before the split; they stay importable from this module.
from .models import (
    EMAIL_STATUSES,
    FAILED_STATUSES,
    NOTIFICATION_STATUSES,
    SMOKE_TEST_EMAILS,
    ApiKey,
    Notification,
    ReplyToAddress,
    SandboxKeys,
    Template,
    TemplateVersion,
)
from .notify_state import NotifyState
from .seeding import SEED_KEYS, Seed, check_seed_keys, load_seed, snapshot_seed, split_seed

if TYPE_CHECKING:
    from .callbacks import CallbackSender

__all__ = [
    "EMAIL_STATUSES",
    "FAILED_STATUSES",
    "NOTIFICATION_STATUSES",
    "SMOKE_TEST_EMAILS",
    "ApiKey",
    "FaultConfig",
    "Notification",
    "ReplyToAddress",
    "SandboxKeys",
    "SandboxState",
    "Template",
    "TemplateVersion",
]


class SandboxState:
    """The whole sandbox: one Notify service, one Mailchimp account, and the faults over both.

    :param seed: a mapping, or a path to a JSON or YAML file: the Notify part (see
        :class:`~flask_dmmail.sandbox.notify_state.NotifyState`) and a ``mailchimp`` part
        (see :meth:`flask_dmmail.sandbox.mailchimp.state.MailchimpState.seed`).
        It is applied again on every :meth:`reset`.
    :param faults: the faults injected from the start and after every :meth:`reset`
        (default none).

    Every other keyword configures the Notify service and is described on
    :class:`~flask_dmmail.sandbox.notify_state.NotifyState`: ``delivery_delay``,
    ``rate_limit``, ``burst``, ``daily_limit``, ``restricted``, ``auto_templates``,
    ``service_id`` (the same keys on every start), ``service_name``, ``contact_link``, and
    ``callback_url`` with ``callback_token`` (a delivery receipt is POSTed there whenever a
    notification reaches a final status, as Notify does; see
    :mod:`flask_dmmail.sandbox.callbacks`).
    """

    def __init__(
        self,
        seed: Seed | None = None,
        *,
        delivery_delay: float = 0.0,
        rate_limit: int = 3000,
        burst: int | None = None,
        daily_limit: int = 250_000,
        restricted: bool = False,
        auto_templates: bool = False,
        service_id: str | None = None,
        service_name: str = "Sandbox service",
        contact_link: str | None = "https://www.example.gov.uk/contact",
        faults: FaultConfig | None = None,
        callback_url: str | None = None,
        callback_token: str | None = None,
    ) -> None:
        initial = snapshot_seed(seed)
        check_seed_keys(initial, SEED_KEYS)
        notify_seed, self._mailchimp_seed = split_seed(initial)
        self._initial_faults = faults or FaultConfig()
        self._faults_lock = threading.Lock()
        self._stall_release = threading.Event()
        self._rng = random.Random()
        #: What the fault layer injects now (see :meth:`set_faults`).
        self.faults: FaultConfig = self._initial_faults
        #: The Notify service: keys, templates, limits, notifications.
        self.notify = NotifyState(
            notify_seed,
            delivery_delay=delivery_delay,
            rate_limit=rate_limit,
            burst=burst,
            daily_limit=daily_limit,
            restricted=restricted,
            auto_templates=auto_templates,
            service_id=service_id,
            service_name=service_name,
            contact_link=contact_link,
            callback_url=callback_url,
            callback_token=callback_token,
        )
        #: The Mailchimp account: audiences, members, campaigns, batches, webhooks.
        self.mailchimp = MailchimpState()
        if self._mailchimp_seed is not None:
            self.mailchimp.seed(self._mailchimp_seed)

    # ------------------------------------------------------------ both services

    def reset(self) -> None:
        """Back to the state at construction: initial seed and limits, no notifications,
        no faults, no revoked keys, the Mailchimp account as seeded. The keys stay the same."""
        with self._faults_lock:
            self.faults = self._initial_faults
            self._release_stalls()
        self.notify.reset()
        self.mailchimp.reset()
        if self._mailchimp_seed is not None:
            self.mailchimp.seed(self._mailchimp_seed)

    def seed(self, seed: Seed) -> list[str]:
        """Add or update templates, reply-to addresses, team members and guest list, and
        Mailchimp audiences (a seed's ``mailchimp`` part).

        A template whose id exists gets a new version when its content changed.
        Returns the ids of the templates in the seed.

        :param seed: a mapping, or a path to a JSON or YAML file, shaped like the
            constructor's.
        """
        data = load_seed(seed)
        check_seed_keys(data, SEED_KEYS)
        notify_part, mailchimp_part = split_seed(data)
        ids = self.notify.seed(notify_part)
        if mailchimp_part is not None:
            self.mailchimp.seed(mailchimp_part)
        return ids

    def close(self) -> None:
        """Stop the status ticker and Mailchimp batch threads and release stalled requests."""
        with self._faults_lock:
            self._release_stalls()
        self.notify.close()
        self.mailchimp.close()

    def to_dict(self) -> dict[str, Any]:
        """The service settings as JSON (keys included: they only open this sandbox)."""
        out = self.notify.to_dict()
        with self._faults_lock:
            out["faults"] = self.faults.to_dict()
        return out

    # ------------------------------------------------------------------ faults

    def set_faults(
        self,
        *,
        latency: float = 0.0,
        error_rate: float = 0.0,
        drop_rate: float = 0.0,
        stall_rate: float = 0.0,
        stall_seconds: float = 35.0,
        paths: Sequence[str] = ("/v2/",),
        seed: int | None = None,
    ) -> FaultConfig:
        """Replace the fault configuration, for any path of either API.

        See :class:`~flask_dmmail.sandbox.faults.FaultConfig` for what each option does;
        ``seed`` seeds the dice, for a repeatable run.
        """
        for name, rate in (
            ("error_rate", error_rate),
            ("drop_rate", drop_rate),
            ("stall_rate", stall_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if error_rate + drop_rate + stall_rate > 1.0 + 1e-9:
            raise ValueError("error_rate + drop_rate + stall_rate must not exceed 1")
        if latency < 0 or stall_seconds < 0:
            raise ValueError("latency and stall_seconds must not be negative")
        if isinstance(paths, str) or not all(
            isinstance(p, str) and p.startswith("/") for p in paths
        ):
            raise ValueError("paths must be a list of path prefixes starting with /")
        config = FaultConfig(
            latency=float(latency),
            error_rate=float(error_rate),
            drop_rate=float(drop_rate),
            stall_rate=float(stall_rate),
            stall_seconds=float(stall_seconds),
            paths=tuple(paths),
        )
        with self._faults_lock:
            self.faults = config
            if seed is not None:
                self._rng.seed(seed)
        return config

    def clear_faults(self) -> None:
        """No more faults; requests stalled now are answered at once."""
        with self._faults_lock:
            self.faults = FaultConfig()
            self._release_stalls()

    def _release_stalls(self) -> None:
        self._stall_release.set()
        self._stall_release = threading.Event()

    def roll_fault(self, path: str) -> tuple[FaultConfig, str | None, threading.Event]:
        """For a request to ``path``: the fault config, which fault (``"error"``,
        ``"drop"``, ``"stall"`` or None) and the event that ends a stall early."""
        with self._faults_lock:
            config = self.faults
            if not config.active or not path.startswith(config.paths):
                return config, None, self._stall_release
            roll = self._rng.random()
            fault: str | None = None
            if roll < config.error_rate:
                fault = "error"
            elif roll < config.error_rate + config.drop_rate:
                fault = "drop"
            elif roll < config.error_rate + config.drop_rate + config.stall_rate:
                fault = "stall"
            return config, fault, self._stall_release

    # ------------------------------------------------- the Notify service's controls
    # Documented on ``sandbox.state`` (each mirrors a /_sandbox endpoint): each one is the
    # method of the same name on :attr:`notify` or its parts, with the same signature.

    @property
    def service_id(self) -> str:
        """The Notify service's id."""
        return self.notify.service_id

    @property
    def keys(self) -> SandboxKeys:
        """The Notify service's test, team and live keys."""
        return self.notify.keys

    @property
    def callbacks(self) -> CallbackSender | None:
        """The delivery receipts' sender, when a ``callback_url`` was given."""
        return self.notify.callbacks

    def outbox(self) -> list[Notification]:
        """Every stored notification of every key type, newest first, statuses current."""
        return self.notify.notifications.outbox()

    def get(self, notification_id: str) -> Notification | None:
        """The stored notification with this id, or None."""
        return self.notify.notifications.get(notification_id)

    def force_status(self, notification_id: str, status: str) -> Notification:
        """Set a notification's status now (pending automatic changes are dropped)."""
        return self.notify.notifications.force_status(notification_id, status)

    def add_status_listener(self, listener: StatusListener) -> None:
        """Call ``listener(notification)`` (a snapshot) after every status change."""
        self.notify.notifications.add_status_listener(listener)

    def remove_status_listener(self, listener: StatusListener) -> None:
        """Stop calling ``listener``."""
        self.notify.notifications.remove_status_listener(listener)

    def set_limits(
        self,
        *,
        rate_limit: int | None = None,
        daily_limit: int | None = None,
        burst: int | None = None,
    ) -> None:
        """Change the per-minute rate limit, the bucket size (``burst``, default Notify's
        own sizing) and/or the daily limit; refills the buckets."""
        self.notify.limits.set_limits(rate_limit=rate_limit, daily_limit=daily_limit, burst=burst)

    def set_service(
        self, *, restricted: bool | None = None, delivery_delay: float | None = None
    ) -> None:
        """Put the service in or out of trial mode, or change the delivery delay."""
        self.notify.set_service(restricted=restricted, delivery_delay=delivery_delay)

    def revoke_key(self, key_type: str, revoked: bool = True) -> None:
        """Revoke (or restore) the key of ``key_type``: "test", "team", "live" or "normal"."""
        self.notify.revoke_key(key_type, revoked)

    def add_template(
        self,
        *,
        name: str,
        subject: str | None,
        body: str,
        type: str = "email",
        id: str | None = None,
        archived: bool | None = None,
    ) -> Template:
        """Add a template (or a new version of one) and return it."""
        return self.notify.add_template(
            name=name, subject=subject, body=body, type=type, id=id, archived=archived
        )

    def archive_template(self, template_id: str, archived: bool = True) -> None:
        """Mark a template archived (deleted) or not."""
        self.notify.archive_template(template_id, archived)

    def __repr__(self) -> str:
        return (
            f"<SandboxState service_id={self.service_id} "
            f"notifications={len(self.notify.notifications)}>"
        )
