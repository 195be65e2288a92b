"""A local server that speaks GOV.UK Notify's API v2 (email) and Mailchimp's Marketing API v3.

The official ``notifications-python-client`` and ``mailchimp-marketing`` clients talk to it
exactly as they talk to the real services. Run it standalone with
``python -m flask_dmmail.sandbox --port 6011``, start it in a background thread with
:meth:`Sandbox.start`, or build the Flask app with :func:`create_app`.

Where things are: ``state.py`` holds the root :class:`SandboxState` (the Notify and
Mailchimp states side by side, and the faults over both). The Notify side is
``notify_state.py`` (the service), ``models.py``, ``seeding.py``, ``limits.py``,
``lifecycle.py`` (notifications and their statuses), ``notify_api.py`` with ``auth.py``,
``validation.py`` and ``files.py`` (the /v2 routes), ``render/`` (Notify's template rules)
and ``callbacks.py`` (delivery receipts); the Mailchimp side is ``mailchimp/``. Around both:
``faults.py``, ``control.py`` (``/_sandbox/``), ``outbox.py`` (the web pages), ``guard.py``,
``app.py`` and ``server.py``.
"""

from __future__ import annotations

from .app import create_app
from .server import Sandbox, SandboxKeys
from .state import SandboxState

__all__ = ["Sandbox", "SandboxKeys", "SandboxState", "create_app"]
