"""Webhooks: an audience's webhooks and the account's batch webhooks, the events their
changes queue, and the form-encoded POSTs that deliver them.

Creating an audience's webhook checks its URL as Mailchimp does: a GET that must answer 200,
and no second webhook at the same URL.

Stores queue events while they hold the lock (:meth:`WebhookStore.queue_webhook`,
:meth:`WebhookStore.enqueue`); :meth:`WebhookStore.flush_webhooks` (the API calls it after each
request) hands the queued events to a thread that POSTs them, so no request waits on a
receiver. Every attempt is kept as a :class:`~.models.WebhookDelivery`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

import requests

from . import problems
from .models import ListRecord, MemberRecord, WebhookDelivery, new_id
from .serialise import collection_links, unique_email_id

if TYPE_CHECKING:
    from .state import MailchimpState

__all__ = ["MAX_BATCH_WEBHOOKS", "WebhookStore"]

MAX_BATCH_WEBHOOKS: Final = 20
#: The User-Agent of the GET that checks a new webhook's URL (mailchimp-api.md §7).
VALIDATOR_AGENT: Final = "MailChimp.com WebHook Validator"
#: How long that GET may take, in seconds (Mailchimp's own limit is not published).
VERIFY_TIMEOUT: Final = 10.0


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


#: A queued event: the receiver's URL, the event type, and the form fields to POST.
_Outgoing = tuple[str, str, list[tuple[str, str]]]


class WebhookStore:
    """Audience webhooks, batch webhooks and their deliveries; shares the state's lock.

    :param state: the :class:`~flask_dmmail.sandbox.mailchimp.MailchimpState` it belongs to
        (its lock, clock, ``deliver_webhooks`` and the other stores).
    """

    def __init__(self, state: MailchimpState) -> None:
        self._state = state
        self._lock = state.lock
        self._webhook_threads: list[threading.Thread] = []
        self.reset()

    def reset(self) -> None:
        """No batch webhooks, deliveries or queued events (audience webhooks go with their
        audiences)."""
        with self._lock:
            self._batch_webhooks: dict[str, dict[str, Any]] = {}
            self._deliveries: list[WebhookDelivery] = []
            self._outgoing: list[_Outgoing] = []

    def _list(self, list_id: str) -> ListRecord:
        return self._state.list_store.record(list_id)

    # ----------------------------------------------------------------- audience webhooks

    def create_webhook(self, list_id: str, body: Any, base: str) -> dict[str, Any]:
        """POST /lists/{id}/webhooks: refused for a URL the audience already has (its query
        string aside) or one that does not answer a GET with 200."""
        body = problems.require_object(body)
        if body.get("url") is None:
            raise problems.required_fields("url")
        url = problems.require_url(body["url"])
        with self._lock:
            self._refuse_same_url(self._list(list_id), url)
        self._verify_url(url)
        events = {
            "subscribe": True,
            "unsubscribe": True,
            "profile": True,
            "cleaned": True,
            "upemail": True,
            "campaign": True,
        }
        sources = {"user": True, "admin": True, "api": False}
        for name, target in (("events", events), ("sources", sources)):
            given = body.get(name)
            if isinstance(given, dict):
                target.update({k: bool(v) for k, v in given.items() if k in target})
        with self._lock:
            lst = self._list(list_id)
            self._refuse_same_url(lst, url)  # again: another request may have added it
            webhook_id = new_id()
            lst.webhooks[webhook_id] = {
                "id": webhook_id,
                "url": url,
                "events": events,
                "sources": sources,
                "list_id": list_id,
            }
            return self._webhook_json(lst.webhooks[webhook_id], base)

    @staticmethod
    def _refuse_same_url(lst: ListRecord, url: str) -> None:
        """Mailchimp refuses a second webhook with the same URL, even with other query
        arguments (mailchimp/mailchimp-client-lib-codegen#11); its wording is not recorded
        (docs/sandbox.md)."""
        wanted = _without_query(url)
        if any(_without_query(hook["url"]) == wanted for hook in lst.webhooks.values()):
            raise problems.invalid_resource(
                errors=[
                    {"field": "url", "message": "This audience already has a webhook at that URL."}
                ]
            )

    @staticmethod
    def _verify_url(url: str) -> None:
        """Mailchimp checks a new webhook's URL with a GET (User-Agent "MailChimp.com WebHook
        Validator") and refuses it unless it answers 200, with "We couldn't verify the URL is
        working. Please double check and try again. HTTP Code: <status>" (mailchimp-api.md §7;
        the text: veda-consulting-company/uk.co.vedaconsulting.mailchimp#101,
        PipedreamHQ/pipedream#1289). No answer at all gives code 0 here (not recorded)."""
        try:
            response = requests.get(
                url,
                headers={"User-Agent": VALIDATOR_AGENT},
                timeout=VERIFY_TIMEOUT,
                allow_redirects=False,
            )
            status = response.status_code
            response.close()
        except requests.RequestException:
            status = 0
        if status != 200:
            raise problems.invalid_resource(
                "We couldn't verify the URL is working. Please double check and try again. "
                f"HTTP Code: {status}"
            )

    def get_webhooks(self, list_id: str, base: str) -> dict[str, Any]:
        """GET /lists/{id}/webhooks."""
        with self._lock:
            lst = self._list(list_id)
            hooks = [self._webhook_json(w, base) for w in lst.webhooks.values()]
            return {
                "webhooks": hooks,
                "list_id": list_id,
                "total_items": len(hooks),
                "_links": collection_links(f"{base}/lists/{list_id}/webhooks"),
            }

    def get_webhook(self, list_id: str, webhook_id: str, base: str) -> dict[str, Any]:
        """GET /lists/{id}/webhooks/{webhook_id}."""
        with self._lock:
            hook = self._list(list_id).webhooks.get(webhook_id)
            if hook is None:
                raise problems.not_found()
            return self._webhook_json(hook, base)

    def delete_webhook(self, list_id: str, webhook_id: str) -> None:
        """DELETE /lists/{id}/webhooks/{webhook_id}."""
        with self._lock:
            lst = self._list(list_id)
            if lst.webhooks.pop(webhook_id, None) is None:
                raise problems.not_found()

    @staticmethod
    def _webhook_json(hook: Mapping[str, Any], base: str) -> dict[str, Any]:
        href = f"{base}/lists/{hook['list_id']}/webhooks/{hook['id']}"
        return {
            "id": hook["id"],
            "url": hook["url"],
            "events": dict(hook["events"]),
            "sources": dict(hook["sources"]),
            "list_id": hook["list_id"],
            "_links": [{"rel": "self", "href": href, "method": "GET"}],
        }

    # ----------------------------------------------------------------- events, deliveries

    def queue_webhook(self, lst: ListRecord, m: MemberRecord, event: str, source: str) -> None:
        """Queue the ``event`` (``unsubscribe`` or ``cleaned``) of ``m`` for the audience's
        webhooks that want it from ``source``."""
        if not lst.webhooks:
            return
        now = self._state.clock()
        merges = {"EMAIL": m.email, **{k: str(v) for k, v in (m.merge_fields or {}).items()}}
        form: list[tuple[str, str]] = [
            ("type", event),
            ("fired_at", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))),
            ("data[list_id]", lst.id),
            ("data[email]", m.email),
        ]
        if event == "unsubscribe":
            form += [
                ("data[action]", "unsub"),
                ("data[reason]", "manual"),
                ("data[id]", unique_email_id(lst, m)),
                ("data[email_type]", m.email_type),
                ("data[ip_opt]", m.ip_opt),
                ("data[web_id]", str(100_000_000 + m.seq)),
            ]
            form += [(f"data[merges][{k}]", v) for k, v in merges.items()]
        else:
            form += [("data[reason]", "hard")]
        for hook in lst.webhooks.values():
            if hook["events"].get(event) and hook["sources"].get(source):
                self._outgoing.append((hook["url"], event, list(form)))

    def outgoing_extra(self, lst: ListRecord, *, reason: str, campaign_id: str) -> None:
        """Fill in the reason and campaign of the events just queued for ``lst``."""
        for _url, _event, form in self._outgoing:
            if ("data[list_id]", lst.id) not in form:
                continue
            for i, (k, _v) in enumerate(form):
                if k == "data[reason]":
                    form[i] = (k, reason)
            if campaign_id:
                form.append(("data[campaign_id]", campaign_id))

    def flush_webhooks(self) -> None:
        """Start delivering the webhook events queued by the last changes (the API calls this)."""
        with self._lock:
            outgoing, self._outgoing = self._outgoing, []
            if not self._state.deliver_webhooks or not outgoing:
                return
            thread = threading.Thread(
                target=self._deliver, args=(outgoing,), name="mailchimp-webhooks", daemon=True
            )
            # Started before it is listed: wait_for_webhooks() may join any listed thread,
            # and joining one not yet started raises RuntimeError.
            thread.start()
            self._webhook_threads.append(thread)

    def _deliver(self, outgoing: list[_Outgoing]) -> None:
        for url, event, form in outgoing:
            status: int | None = None
            error: str | None = None
            try:
                response = requests.post(
                    url,
                    data=form,
                    headers={"User-Agent": "MailChimp"},
                    timeout=10,
                )
                status = response.status_code
            except requests.RequestException as exc:
                error = type(exc).__name__
            with self._lock:
                self._deliveries.append(WebhookDelivery(url, event, tuple(form), status, error))

    def wait_for_webhooks(self, timeout: float = 10.0) -> list[WebhookDelivery]:
        """Wait for webhook deliveries in progress; returns every delivery so far."""
        with self._lock:
            threads, self._webhook_threads = self._webhook_threads, []
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.webhook_deliveries()

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook delivery so far (finished or failed)."""
        with self._lock:
            return list(self._deliveries)

    def enqueue(self, url: str, event: str, form: list[tuple[str, str]]) -> None:
        """Queue one event for ``url`` (delivered at the next :meth:`flush_webhooks`)."""
        self._outgoing.append((url, event, form))

    # ----------------------------------------------------------------- batch webhooks

    def create_batch_webhook(self, body: Any, base: str) -> dict[str, Any]:
        """POST /batch-webhooks ``{url, enabled}``: at most 20."""
        body = problems.require_object(body)
        if body.get("url") is None:
            raise problems.required_fields("url")
        url = problems.require_url(body["url"])
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise problems.schema_mismatch("enabled", "boolean", problems.type_name(enabled))
        with self._lock:
            if len(self._batch_webhooks) >= MAX_BATCH_WEBHOOKS:
                # Mailchimp refuses a 21st; its exact wording is unverified.
                raise problems.invalid_resource(
                    f"You may only have {MAX_BATCH_WEBHOOKS} batch webhooks."
                )
            hook_id = new_id()
            while hook_id in self._batch_webhooks:
                hook_id = new_id()
            self._batch_webhooks[hook_id] = {"id": hook_id, "url": url, "enabled": enabled}
            return self._batch_webhook_json(self._batch_webhooks[hook_id], base)

    def get_batch_webhooks(self, base: str) -> dict[str, Any]:
        """GET /batch-webhooks."""
        with self._lock:
            hooks = [self._batch_webhook_json(h, base) for h in self._batch_webhooks.values()]
            return {
                "webhooks": hooks,
                "total_items": len(hooks),
                "_links": collection_links(f"{base}/batch-webhooks"),
            }

    def get_batch_webhook(self, hook_id: str, base: str) -> dict[str, Any]:
        """GET /batch-webhooks/{id}."""
        with self._lock:
            return self._batch_webhook_json(self._batch_webhook(hook_id), base)

    def update_batch_webhook(self, hook_id: str, body: Any, base: str) -> dict[str, Any]:
        """PATCH /batch-webhooks/{id}: ``url`` and ``enabled``."""
        body = problems.require_object(body)
        url = problems.require_url(body["url"]) if body.get("url") is not None else None
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise problems.schema_mismatch("enabled", "boolean", problems.type_name(enabled))
        with self._lock:
            hook = self._batch_webhook(hook_id)
            if url is not None:
                hook["url"] = url
            if enabled is not None:
                hook["enabled"] = enabled
            return self._batch_webhook_json(hook, base)

    def delete_batch_webhook(self, hook_id: str) -> None:
        """DELETE /batch-webhooks/{id}."""
        with self._lock:
            self._batch_webhook(hook_id)
            del self._batch_webhooks[hook_id]

    def _batch_webhook(self, hook_id: str) -> dict[str, Any]:
        hook = self._batch_webhooks.get(hook_id)
        if hook is None:
            raise problems.not_found()
        return hook

    @staticmethod
    def _batch_webhook_json(hook: Mapping[str, Any], base: str) -> dict[str, Any]:
        href = f"{base}/batch-webhooks/{hook['id']}"
        return {
            "id": hook["id"],
            "url": hook["url"],
            "enabled": hook["enabled"],
            "_links": [
                {"rel": "self", "href": href, "method": "GET"},
                {"rel": "parent", "href": f"{base}/batch-webhooks", "method": "GET"},
                {"rel": "update", "href": href, "method": "PATCH"},
                {"rel": "delete", "href": href, "method": "DELETE"},
            ],
        }

    def enabled_batch_webhooks(self) -> list[dict[str, Any]]:
        """The batch webhooks that are on (each ``{id, url, enabled}``)."""
        return [h for h in self._batch_webhooks.values() if h["enabled"]]
