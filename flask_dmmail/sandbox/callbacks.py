"""Delivery receipts from the sandbox: Notify's callback POSTs, sent to a configured URL.

When a notification reaches a final status, Notify POSTs a JSON receipt to the service's
callback URL with ``Authorization: Bearer <token>``. :class:`CallbackSender` does the same
for the sandbox. It is a status listener (``SandboxState.add_status_listener``) that only
puts the receipt on a queue, so it never blocks the sandbox or holds its lock; one
background thread posts the receipts in order.

Like Notify, it retries a receipt that got no answer, a 5xx or a 429 (a bounded number of
times, with exponential backoff) and gives up on any other 4xx at once. Every request has a
timeout. Nothing it logs holds the token or the recipient.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from typing import Any

import requests

from .models import Notification, format_time

__all__ = ["CALLBACK_STATUSES", "CallbackSender", "receipt_payload"]

logger = logging.getLogger(__name__)

#: The statuses Notify sends a delivery receipt for.
CALLBACK_STATUSES = frozenset(
    {"delivered", "permanent-failure", "temporary-failure", "technical-failure", "sent"}
)


def receipt_payload(notification: Notification) -> dict[str, Any]:
    """The JSON body Notify posts for ``notification``'s current status."""
    return {
        "id": notification.id,
        "reference": notification.reference,
        "to": notification.email_address,
        "status": notification.status,
        "created_at": format_time(notification.created_at),
        "completed_at": format_time(notification.completed_at),
        "sent_at": format_time(notification.sent_at),
        "notification_type": notification.type,
        "template_id": notification.template_id,
        "template_version": notification.template_version,
    }


class CallbackSender:
    """Post delivery receipts to ``url`` with ``token``, from one background thread.

    Call it with a :class:`~flask_dmmail.sandbox.models.Notification` (it is a status
    listener); receipts for statuses outside :data:`CALLBACK_STATUSES` are not sent.
    ``retries`` is the number of extra attempts after a retryable failure; the n-th retry
    waits ``backoff * 2**(n-1)`` seconds. At most ``max_queued`` receipts wait; more are
    dropped with a warning.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_queued: int = 10_000,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("callback_url must be an http(s) URL")
        if not isinstance(token, str) or not token.strip():
            raise ValueError("callback_token is required with callback_url (Notify needs one)")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError("timeout must be positive; retries and backoff not negative")
        self.url = url
        self._token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queued)
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._unfinished = 0
        #: Receipts the receiver accepted (2xx), and receipts given up on.
        self.sent = 0
        self.failed = 0
        self._thread = threading.Thread(
            target=self._run, name="dmmail-sandbox-callbacks", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"<CallbackSender url={self.url!r} sent={self.sent} failed={self.failed}>"

    def __call__(self, notification: Notification) -> None:
        """Queue the receipt for ``notification`` (returns at once)."""
        if notification.status not in CALLBACK_STATUSES or self._stop.is_set():
            return
        payload = receipt_payload(notification)
        with self._idle:
            self._unfinished += 1
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self._done(ok=False)
            logger.warning(
                "sandbox delivery receipt for notification %s dropped: %d receipts are waiting",
                notification.id,
                self._queue.maxsize,
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued receipt was posted or given up on; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread; receipts still waiting are dropped."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _done(self, *, ok: bool) -> None:
        with self._idle:
            if ok:
                self.sent += 1
            else:
                self.failed += 1
            self._unfinished -= 1
            self._idle.notify_all()

    def _run(self) -> None:
        session = requests.Session()
        try:
            while True:
                payload = self._queue.get()
                if payload is None or self._stop.is_set():
                    return
                ok = False
                try:
                    ok = self._post(session, payload)
                except Exception:  # never let one receipt end the thread
                    logger.exception("sandbox delivery receipt failed unexpectedly")
                finally:
                    self._done(ok=ok)
        finally:
            session.close()
            with self._idle:
                self._unfinished = 0
                self._idle.notify_all()

    def _post(self, session: requests.Session, payload: dict[str, Any]) -> bool:
        body = json.dumps(payload)
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self._token}",
        }
        attempt = 0
        while True:
            attempt += 1
            try:
                response = session.post(self.url, data=body, headers=headers, timeout=self.timeout)
            except requests.RequestException as error:
                outcome = f"no answer ({type(error).__name__})"
                retryable = True
            else:
                status = response.status_code
                response.close()
                if 200 <= status < 300:
                    logger.debug(
                        "sandbox delivery receipt for notification %s accepted (HTTP %d)",
                        payload["id"],
                        status,
                    )
                    return True
                outcome = f"HTTP {status}"
                retryable = status >= 500 or status == 429
            if not retryable or attempt > self.retries:
                logger.warning(
                    "sandbox delivery receipt for notification %s not accepted after %d "
                    "attempt(s): %s",
                    payload["id"],
                    attempt,
                    outcome,
                )
                return False
            if self._stop.wait(self.backoff * 2 ** (attempt - 1)):
                return False
