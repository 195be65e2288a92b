"""The notification lifecycle: stored notifications, their status changes, listeners, look-ups.

:class:`Notifications` keeps every notification the Notify side accepted, moves each one
``created`` → ``sending`` → its final status on a schedule (a background ticker thread, or
any read, applies the changes that are due), calls the status listeners (delivery receipts
are one) after every change, and answers the look-ups: the outbox, one notification, and
Notify's filtered, paged list. It shares the Notify state's lock.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from .models import (
    FAILED_STATUSES,
    NOTIFICATION_STATUSES,
    SIMULATED_FINAL_STATUS,
    TERMINAL_STATUSES,
    Notification,
    utcnow,
)

__all__ = ["Notifications", "StatusListener"]

logger = logging.getLogger(__name__)

#: Called with a snapshot of a notification after each of its status changes.
StatusListener = Callable[[Notification], None]


class Notifications:
    """The stored notifications of one Notify service and their status progression.

    :param lock: the Notify state's lock; every method takes it.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock
        self._listeners: list[StatusListener] = []
        self._wake = threading.Condition(lock)
        self._ticker: threading.Thread | None = None
        self._closed = False
        self.reset()

    def reset(self) -> None:
        """Forget every notification and every pending status change (listeners stay)."""
        with self.lock:
            self._notifications: dict[str, Notification] = {}
            self._by_key_type: dict[str, list[Notification]] = {
                "test": [],
                "team": [],
                "normal": [],
            }
            self._order: list[Notification] = []
            self._pending: list[tuple[float, int, str, str]] = []
            self._seq = 0

    def __len__(self) -> int:
        """How many notifications are stored (statuses are not advanced)."""
        with self.lock:
            return len(self._order)

    # --------------------------------------------------------------- reading

    def outbox(self) -> list[Notification]:
        """Every stored notification of every key type, newest first, statuses current."""
        self.advance()
        with self.lock:
            return [n.snapshot() for n in reversed(self._order)]

    def get(self, notification_id: str) -> Notification | None:
        """The stored notification with this id, or None."""
        self.advance()
        with self.lock:
            found = self._notifications.get(notification_id)
            return found.snapshot() if found is not None else None

    def list_notifications(
        self,
        key_type: str,
        *,
        reference: str | None = None,
        statuses: Sequence[str] = (),
        template_types: Sequence[str] = (),
        older_than: str | None = None,
        page_size: int = 250,
    ) -> list[Notification]:
        """A page of notifications sent with ``key_type``, newest first, as Notify lists them.

        :param key_type: ``"test"``, ``"team"`` or ``"normal"``: a key sees only its type's.
        :param reference: only notifications with this reference.
        :param statuses: only these statuses (``"failed"`` means every failure status).
        :param template_types: only these types (``"email"``, ``"sms"``, ``"letter"``).
        :param older_than: only notifications older than the one with this id (none if that
            id is unknown or of another key type).
        :param page_size: at most this many.
        """
        self.advance()
        wanted_status = set(statuses)
        if "failed" in wanted_status:
            wanted_status.update(FAILED_STATUSES)
        wanted_types = set(template_types)
        with self.lock:
            items = self._by_key_type.get(key_type, [])
            end = len(items)
            if older_than is not None:
                anchor = self._notifications.get(older_than)
                if anchor is None or anchor.key_type != key_type:
                    return []
                end = items.index(anchor)
            page: list[Notification] = []
            for i in range(end - 1, -1, -1):
                n = items[i]
                if reference is not None and n.reference != reference:
                    continue
                if wanted_status and n.status not in wanted_status:
                    continue
                if wanted_types and n.type not in wanted_types:
                    continue
                page.append(n.snapshot())
                if len(page) >= page_size:
                    break
            return page

    # ------------------------------------------------------------- lifecycle

    def store(self, notification: Notification, delivery_delay: float) -> None:
        """Keep a new notification and schedule its status changes over ``delivery_delay``."""
        with self.lock:
            self._notifications[notification.id] = notification
            self._by_key_type.setdefault(notification.key_type, []).append(notification)
            self._order.append(notification)
            final = SIMULATED_FINAL_STATUS.get(
                notification.email_address.strip().lower(), "delivered"
            )
            start = time.monotonic()
            self._schedule(start + delivery_delay / 2, notification.id, "sending")
            self._schedule(start + delivery_delay, notification.id, final)

    def restore(self, notifications: Iterable[Notification], *, schedule: bool = True) -> None:
        """Keep notifications saved by an earlier run (oldest first), as they were. With
        ``schedule``, one not yet in a final status moves on to it now; without, nothing
        changes by itself (a read-only copy starts no thread)."""
        with self.lock:
            for n in notifications:
                if n.id in self._notifications:
                    continue
                self._notifications[n.id] = n
                self._by_key_type.setdefault(n.key_type, []).append(n)
                self._order.append(n)
                if schedule and n.status not in TERMINAL_STATUSES:
                    final = SIMULATED_FINAL_STATUS.get(n.email_address.strip().lower(), "delivered")
                    self._schedule(time.monotonic(), n.id, final)

    def _schedule(self, due: float, notification_id: str, status: str) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (due, self._seq, notification_id, status))
        self._ensure_ticker()
        self._wake.notify()

    def force_status(self, notification_id: str, status: str) -> Notification:
        """Set a notification's status now (pending automatic changes are dropped)."""
        if status not in NOTIFICATION_STATUSES or status == "failed":
            raise ValueError(f"unknown status {status!r}")
        with self.lock:
            n = self._notifications.get(notification_id)
            if n is None:
                raise KeyError(notification_id)
            self._pending = [p for p in self._pending if p[2] != notification_id]
            heapq.heapify(self._pending)
            changed = self._set_status(n, status)
        if changed is not None:
            self._fire([changed])
        return n.snapshot()

    def _set_status(self, n: Notification, status: str) -> Notification | None:
        if n.status == status:
            return None
        now = utcnow()
        n.status = status
        if status != "created" and n.sent_at is None:
            n.sent_at = now
        n.completed_at = now if status in TERMINAL_STATUSES else None
        return n.snapshot()

    def advance(self) -> None:
        """Apply every status change that is due (the ticker does this too)."""
        changed = self._drain()
        if changed:
            self._fire(changed)

    def _drain(self) -> list[Notification]:
        now = time.monotonic()
        changed: list[Notification] = []
        with self.lock:
            while self._pending and self._pending[0][0] <= now:
                _, _, nid, status = heapq.heappop(self._pending)
                n = self._notifications.get(nid)
                if n is not None:
                    snap = self._set_status(n, status)
                    if snap is not None:
                        changed.append(snap)
        return changed

    # ------------------------------------------------------------- listeners

    def add_status_listener(self, listener: StatusListener) -> None:
        """Call ``listener(notification)`` (a snapshot) after every status change."""
        with self.lock:
            self._listeners.append(listener)
            self._ensure_ticker()

    def remove_status_listener(self, listener: StatusListener) -> None:
        """Stop calling ``listener``."""
        with self.lock:
            self._listeners.remove(listener)

    def _fire(self, changed: list[Notification]) -> None:
        with self.lock:
            listeners = list(self._listeners)
        for n in changed:
            for listener in listeners:
                try:
                    listener(n)
                except Exception:
                    logger.exception("sandbox status listener failed")

    # ---------------------------------------------------------------- ticker

    def _ensure_ticker(self) -> None:
        if self._ticker is None and not self._closed:
            self._ticker = threading.Thread(
                target=self._tick, name="dmmail-sandbox-ticker", daemon=True
            )
            self._ticker.start()

    def _stopping(self) -> bool:
        return self._closed

    def _tick(self) -> None:
        while not self._stopping():
            with self.lock:
                if not self._pending:
                    self._wake.wait()
                else:
                    wait = self._pending[0][0] - time.monotonic()
                    if wait > 0:
                        self._wake.wait(wait)
                if self._stopping():
                    return
            self.advance()

    def close(self) -> None:
        """Stop the status ticker (no status changes by themselves afterwards)."""
        with self.lock:
            self._closed = True
            self._wake.notify_all()
        ticker = self._ticker
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(timeout=2)
