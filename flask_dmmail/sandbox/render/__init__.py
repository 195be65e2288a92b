"""GOV.UK Notify's template rules, as pure functions.

Placeholders and filling follow notifications-utils' ``field.py``
(:mod:`~flask_dmmail.sandbox.render.placeholders`, with :func:`sanitise`, the API's
``sanitise_content_for``); the subject typography follows its ``do_nice_typography`` with
SmartyPants' quote rules (:mod:`~flask_dmmail.sandbox.render.typography`); the email HTML
follows the markdown subset and the HTML of its email renderer
(:mod:`~flask_dmmail.sandbox.render.email_html`). Written from the behaviour, not from their
code.
"""

from __future__ import annotations

from .email_html import render_email_html
from .placeholders import fill, missing_placeholders, normalise_name, placeholders, sanitise
from .typography import format_subject

__all__ = [
    "fill",
    "format_subject",
    "missing_placeholders",
    "normalise_name",
    "placeholders",
    "render_email_html",
    "sanitise",
]
