"""flask-dmmail: one Flask extension for GOV.UK Notify email and Mailchimp audiences.

::

    from flask_dmmail import DMMail

    dmmail = DMMail()

    def create_app():
        app = Flask(__name__)
        app.config.from_object(config[environment])
        dmmail.init_app(app)
        return app

    app.extensions["dmmail"].send("someone@example.gov.uk", "reset_password", {"url": url})
"""

from __future__ import annotations

from . import errors, signals
from .attachments import Attachment, attachment
from .errors import DMMailError, ExtensionError
from .extension import DMMail, Mailer
from .notify import NotificationStatus, PreparedEmail, SentEmail, TemplatePreview

__all__ = [
    "Attachment",
    "DMMail",
    "DMMailError",
    "ExtensionError",
    "Mailer",
    "NotificationStatus",
    "PreparedEmail",
    "SentEmail",
    "TemplatePreview",
    "attachment",
    "errors",
    "signals",
]
