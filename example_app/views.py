"""The example's one page: a form that sends a welcome email."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from flask_dmmail.errors import InvalidInputError, NotifyError

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
