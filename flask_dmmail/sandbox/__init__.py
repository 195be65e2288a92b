"""A local server that speaks GOV.UK Notify's API v2 (email) and Mailchimp's Marketing API v3.

The official ``notifications-python-client`` and ``mailchimp-marketing`` clients talk to it
exactly as they talk to the real services. Run it standalone with
``python -m flask_dmmail.sandbox --port 6011``, start it in a background thread with
:meth:`Sandbox.start`, or build the Flask app with :func:`create_app`.
"""

from __future__ import annotations

from .app import create_app
from .server import Sandbox, SandboxKeys
from .state import SandboxState

__all__ = ["Sandbox", "SandboxKeys", "SandboxState", "create_app"]
