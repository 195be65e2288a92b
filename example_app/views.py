"""The example's one page: a form that sends a welcome email."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from flask_dmmail.errors import InvalidInputError, MailchimpError, NotifyError

main = Blueprint("main", __name__)


@main.get("/")
def index() -> str:
    return render_template("index.html")


@main.post("/send")
def send() -> Response | tuple[str, int]:
    mailer = current_app.extensions["dmmail"]
    try:
        sent = mailer.send(
            request.form.get("email", ""),
            "welcome",
            {"name": request.form.get("name", ""), "framework": "G-Cloud 14"},
        )
    except InvalidInputError as error:
        flash(error.message, "error")
        return render_template("index.html"), 400
    except NotifyError:
        flash("Sorry, we could not send the email. Please try again later.", "error")
        return render_template("index.html"), 503
    assert sent is not None
    flash(f"Email sent (notification {sent.id}).", "success")
    return redirect(url_for("main.index"))


#: What the supplier sees for each subscribe outcome.
SUBSCRIBE_MESSAGES = {
    "subscribed": ("success", "You are on the list: we will email you when the framework opens."),
    "already subscribed": ("success", "You are already on the list."),
    "unsubscribed": (
        "error",
        "You unsubscribed from this list before. Use the sign-up form in any of our emails "
        "to join it again.",
    ),
    "deleted": ("error", "Your address was removed from this list. Use our sign-up form."),
    "invalid address": ("error", "Enter a real email address."),
}


@main.post("/mailing-list")
def mailing_list() -> Response | tuple[str, int]:
    """The supplier frontend's "tell me when a new framework opens" form."""
    audiences = current_app.extensions["dmmail"].mailchimp
    try:
        result = audiences.subscribe(
            "open_framework_notifications", request.form.get("email", "").strip()
        )
    except MailchimpError:
        flash("Sorry, we could not add you to the list. Please try again later.", "error")
        return render_template("index.html"), 503
    category, message = SUBSCRIBE_MESSAGES[str(result.outcome)]
    flash(message, category)
    if not result.on_list:
        return render_template("index.html"), 400
    return redirect(url_for("main.index"))
