"""The sandbox another process of the same app runs, as this process sees it."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import requests

from ..sandbox import SandboxKeys, SandboxState
from ..sandbox.folder import SandboxFolder, ServerInfo
from ..sandbox.snapshot import restore
from .seed import EmbeddedSeed, new_state

__all__ = ["RemoteSandbox", "answers"]

# -- a sandbox another process runs ----------------------------------------------------------


class RemoteSandbox:
    """The sandbox another process of the same app runs, found in the app's instance folder.

    Like :class:`~flask_dmmail.sandbox.Sandbox` it has :attr:`url`, :attr:`keys`,
    :attr:`mailchimp_key` and :attr:`state`; steer it over HTTP through its control endpoints
    (``url + "/_sandbox/..."``).
    """

    def __init__(self, info: ServerInfo, folder: SandboxFolder, seed: EmbeddedSeed) -> None:
        #: The sandbox's base URL.
        self.url = info.url
        #: The Notify service's test, team and live keys.
        self.keys: SandboxKeys = info.keys
        #: The pid of the process that runs it.
        self.pid = info.pid
        parts = urlsplit(info.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._mailchimp_key = info.mailchimp_key
        self._folder = folder
        self._seed = seed
        self._lock = threading.Lock()
        self._copy: tuple[tuple[int, int] | None, SandboxState] | None = None

    @property
    def mailchimp_key(self) -> str:
        """The key of the sandbox's Mailchimp account."""
        return self._mailchimp_key

    @property
    def state(self) -> SandboxState:
        """A read-only copy of the sandbox's state as last saved (within a moment of each
        change), for the outbox page and tests: changes to it are not sent back."""
        stamp = self._folder.state_stamp()
        with self._lock:
            if self._copy is None or self._copy[0] != stamp:
                copy = new_state(self._seed, service_id=None)
                data = self._folder.load_state()
                if data is not None:
                    try:
                        restore(copy, data, schedule=False)
                    except ValueError:
                        copy = new_state(self._seed, service_id=None)
                self._copy = (stamp, copy)
            return self._copy[1]

    def __repr__(self) -> str:
        return f"<RemoteSandbox {self.url} pid={self.pid}>"


def answers(info: ServerInfo) -> bool:
    """True when the sandbox ``info`` names answers as the service it names."""
    try:
        response = requests.get(f"{info.url}/_sandbox/state", timeout=5)
        return bool(response.ok and response.json().get("service_id") == info.service_id)
    except (requests.RequestException, ValueError, AttributeError):
        return False
