"""The sandbox's outbox web page: the emails sent, and each one as the recipient would see it.

:func:`outbox_blueprint` is mounted at ``/`` of the sandbox app and at ``/_dmmail/`` of a
developer's app, so every link is built with ``url_for`` and every template name starts
with ``dmmail_sandbox_``.

The pages show recipients and bodies (reset links included), so they answer only to a
loopback ``Host`` (403 otherwise: no DNS rebinding), and, mounted in an app that is in
neither debug nor testing mode, only to a client on the machine itself (404 otherwise).
See :mod:`flask_dmmail.sandbox.guard`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from ..templates_file import STAND_IN_SUFFIX
from .guard import host_refusal, remote_client
from .mailchimp.models import MEMBER_STATUSES
from .models import Notification
from .render import render_email_html
from .state import SandboxState

__all__ = ["outbox_blueprint"]

_TEMPLATES = Path(__file__).parent / "templates"

#: How each key type is named in Notify's own interface.
KEY_TYPE_NAMES = {"test": "Test", "team": "Team and guest list", "normal": "Live"}

#: The colour class of each status tag.
_STATUS_CLASSES = {
    "created": "grey",
    "sending": "blue",
    "pending": "blue",
    "delivered": "green",
    "sent": "green",
    "permanent-failure": "red",
    "temporary-failure": "red",
    "technical-failure": "red",
}

#: The navigation's links, as ``(endpoint, label)``. Other sandbox pages (Mailchimp's
#: audiences and campaigns) extend ``dmmail_sandbox_base.html`` and pass ``nav_links`` with
#: theirs added, or fill its ``nav_extra`` block.
NAV_LINKS: tuple[tuple[str, str], ...] = (
    ("dmmail_outbox.index", "Notify outbox"),
    ("dmmail_outbox.mailchimp_index", "Mailchimp"),
)

#: The colour class of each Mailchimp member status.
_MEMBER_CLASSES = {
    "subscribed": "green",
    "pending": "blue",
    "unsubscribed": "red",
    "cleaned": "red",
}
_MEMBERS_SHOWN = 500


def _format_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.strftime("%d %b %Y, %H:%M:%S UTC").lstrip("0")


def _format_size(size: Any) -> str:
    if not isinstance(size, int):
        return ""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _standalone(state: SandboxState) -> bool:
    """True when the page is served by the sandbox's own app (not ``/_dmmail/`` of an app)."""
    return current_app.extensions.get("dmmail_sandbox") is state


def _served_elsewhere(state: SandboxState) -> str | None:
    """The URL of the app's embedded sandbox when this process does not serve it: a process
    forked from the one that started it (pytest-flask's ``live_server``, a pre-forking
    server) holds a copy of its state that no email reaches, so its pages are not shown here."""
    if _standalone(state):
        return None
    sandbox = getattr(current_app.extensions.get("dmmail"), "sandbox", None)
    if sandbox is None or getattr(sandbox, "state", None) is not state:
        return None
    if getattr(sandbox, "serving", True):
        return None
    url = getattr(sandbox, "url", None)
    return url if isinstance(url, str) else None


def _template_names() -> list[str]:
    """The names of the app's DM_NOTIFY_TEMPLATES (for the empty outbox's advice)."""
    settings = getattr(current_app.extensions.get("dmmail"), "settings", None)
    return sorted(getattr(settings, "templates", {}))


def _stand_in(template_name: str) -> str | None:
    """The DM_NOTIFY_TEMPLATES name(s) a stand-in template stands in for; None for a real one
    (see :mod:`flask_dmmail.templates_file`)."""
    if template_name.endswith(STAND_IN_SUFFIX):
        return template_name[: -len(STAND_IN_SUFFIX)]
    return None


def _shown_value(value: Any) -> str:
    """A personalisation value as the page lists it (a file as "a file")."""
    if isinstance(value, list):
        return ", ".join(_shown_value(v) for v in value)
    if isinstance(value, dict):
        return "a file"
    return str(value)


def _example_template_id(state: SandboxState) -> str | None:
    """The id of an email template to show in the how-to, if there is one."""
    notify = state.notify
    with notify.lock:
        for template in notify.templates.values():
            if template.current.type == "email" and not template.archived:
                return template.id
    return None


def outbox_blueprint(state: SandboxState | Callable[[], SandboxState]) -> Blueprint:
    """A blueprint named ``dmmail_outbox`` that shows ``state``'s outbox as HTML pages.

    :param state: the sandbox's state, or a function that gives it at each request (an app's
        embedded sandbox starts on first use, perhaps in another process).
    """
    bp = Blueprint("dmmail_outbox", __name__, template_folder=str(_TEMPLATES))
    current: Callable[[], SandboxState] = state if callable(state) else lambda: state

    @bp.before_request
    def _guard() -> ResponseReturnValue | None:
        embedded = current_app.extensions.get("dmmail_sandbox") is not state
        if embedded and not (current_app.debug or current_app.testing) and remote_client():
            abort(404)
        refusal = host_refusal()
        if refusal is not None:
            return Response(refusal, status=403, mimetype="text/plain")
        elsewhere = _served_elsewhere(current())
        if elsewhere is not None:
            # The sandbox serves the same pages at its root: send the browser there.
            index = url_for("dmmail_outbox.index")
            rest = request.full_path[len(index) :] if request.full_path.startswith(index) else ""
            return redirect(f"{elsewhere}/{rest}".rstrip("?"), 307)
        return None

    @bp.app_template_filter("dmmail_time")
    def dmmail_time(value: datetime | None) -> str:
        return _format_time(value)

    @bp.context_processor
    def page_context() -> dict[str, Any]:
        return {
            "nav_links": NAV_LINKS,
            "key_type_names": KEY_TYPE_NAMES,
            "status_classes": _STATUS_CLASSES,
            "format_size": _format_size,
            "member_classes": _MEMBER_CLASSES,
            "stand_in": _stand_in,
            "shown_value": _shown_value,
            "nav_current": "dmmail_outbox.mailchimp_index"
            if (request.endpoint or "").startswith("dmmail_outbox.mailchimp")
            else "dmmail_outbox.index",
        }

    @bp.get("/")
    def index() -> str:
        """Every email sent, newest first."""
        state = current()
        standalone = _standalone(state)
        return render_template(
            "dmmail_sandbox_outbox.html",
            notifications=state.outbox(),
            standalone=standalone,
            sandbox_url=request.host_url.rstrip("/") if standalone else None,
            template_names=[] if standalone else _template_names(),
            example_template_id=_example_template_id(state),
        )

    @bp.get("/email/<notification_id>")
    def email(notification_id: str) -> tuple[str, int]:
        """One email: its subject, rendered body and everything Notify was sent."""
        notification: Notification | None = current().get(notification_id)
        if notification is None:
            return render_template("dmmail_sandbox_missing.html"), 404
        return render_template(
            "dmmail_sandbox_email.html",
            notification=notification,
            body_html=Markup(render_email_html(notification.body)),
        ), 200

    # ---- Mailchimp: audiences, their members, the campaigns sent

    @bp.get("/mailchimp/")
    def mailchimp_index() -> str:
        """Every audience with its counts, and every campaign sent."""
        mailchimp = current().mailchimp
        drafts = sum(1 for c in mailchimp.campaigns() if c["status"] in ("save", "paused"))
        return render_template(
            "dmmail_sandbox_mailchimp.html",
            audiences=mailchimp.lists(),
            campaigns=list(reversed(mailchimp.sent_campaigns())),
            drafts=drafts,
        )

    @bp.get("/mailchimp/audience/<list_id>")
    def mailchimp_audience(list_id: str) -> tuple[str, int]:
        """The members of one audience (the first 500; ``?status=`` filters)."""
        mailchimp = current().mailchimp
        audience = next((a for a in mailchimp.lists() if a["id"] == list_id), None)
        if audience is None:
            return render_template("dmmail_sandbox_mailchimp_missing.html", what="audience"), 404
        status = request.args.get("status") or None
        if status not in (None, *MEMBER_STATUSES):
            status = None
        return render_template(
            "dmmail_sandbox_audience.html",
            audience=audience,
            status=status,
            statuses=MEMBER_STATUSES,
            members=mailchimp.members(list_id, status=status, count=_MEMBERS_SHOWN),
            total=mailchimp.member_count(list_id, status),
        ), 200

    @bp.get("/mailchimp/campaign/<campaign_id>")
    def mailchimp_campaign(campaign_id: str) -> tuple[str, int]:
        """One sent campaign, its HTML in a sandboxed frame."""
        sent = {c.id: c for c in current().mailchimp.sent_campaigns()}
        campaign = sent.get(campaign_id)
        if campaign is None:
            return render_template("dmmail_sandbox_mailchimp_missing.html", what="campaign"), 404
        return render_template("dmmail_sandbox_campaign.html", campaign=campaign), 200

    return bp
