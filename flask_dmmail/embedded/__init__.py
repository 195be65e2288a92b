"""The embedded sandbox: one per app, started on first use, shared, and stopped with its apps.

An app in sandbox mode gets an :class:`EmbeddedSandbox` from ``init_app``, which starts
nothing: creating an app costs no thread and no socket. The first thing that needs the
sandbox (a send, a look-up, the outbox page at ``/_dmmail/``, ``mailer.sandbox``) finds or
starts it:

- **In memory** (testing mode, or ``DM_MAIL_SANDBOX_PERSIST = False``): the apps of one
  process with the same templates (the same seed) share one sandbox in a background thread.
  Each test session starts empty.
- **In the instance folder** (the default outside testing mode): the sandbox belongs to the
  app's instance folder (``<app.instance_path>/dmmail_sandbox/``, see
  :mod:`flask_dmmail.sandbox.folder`). The first process of the app that needs it runs it and
  publishes its URL there; every other process of the app (the dev server, each
  ``flask dmmail`` command, a worker) uses that one over HTTP (a :class:`RemoteSandbox`), so
  they all see one outbox. Its data is saved in the folder on every change and loaded by the
  next process that runs it, so the outbox survives a restart. When the process running it
  ends, the next process of the app that needs it takes over (on the same port when it is
  free), with the data saved.

A sandbox stops when the last app using it in its process is garbage-collected or closed
(:meth:`Mailer.close <flask_dmmail.Mailer.close>`), or when the process exits.

The parts: this package holds an app's handle (:class:`EmbeddedSandbox`) and the outbox pages'
mounting; ``seed.py`` the app's seed (and the one place a state is made from it);
``registry.py`` the sandboxes of this process, shared, found, run and stopped; ``remote.py``
a sandbox another process runs. The files in the instance folder are
:mod:`flask_dmmail.sandbox.folder`'s, the saved data :mod:`flask_dmmail.sandbox.snapshot`'s.
"""

from __future__ import annotations

import logging
import os
import pathlib
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask

from ..config import Settings
from ..errors import ConfigurationError
from ..sandbox import Sandbox, SandboxState
from ..templates_file import log_stand_ins
from .registry import FIND_TIMEOUT, Shared, acquire, release
from .remote import RemoteSandbox
from .seed import EmbeddedSeed, embedded_seed

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger("flask_dmmail")

__all__ = [
    "FIND_TIMEOUT",
    "FOLDER_NAME",
    "EmbeddedSandbox",
    "EmbeddedSeed",
    "OutboxOnFirstRequest",
    "RemoteSandbox",
    "check_audiences",
    "embedded_seed",
]

#: The embedded sandbox's folder inside the app's instance folder.
FOLDER_NAME = "dmmail_sandbox"


# -- the outbox pages -----------------------------------------------------------------------


class OutboxOnFirstRequest:
    """The app's WSGI callable, which registers the outbox pages (the blueprint
    ``dmmail_outbox`` at ``/_dmmail/``) just before the app's first request.

    Flask compiles a URL rule when it is registered, and the outbox has five: registered in
    ``init_app`` they would triple the cost of creating an app, which a test suite's
    function-scoped ``app`` fixture pays in every test. Registered here, only an app that
    serves a request pays, once; the pages are the same blueprint, behind the app's own
    ``before_request`` hooks as before.

    :param app: the app (its ``wsgi_app`` is what this object calls).
    :param state: gives the sandbox's state at each request.
    """

    def __init__(self, app: Flask, state: Callable[[], SandboxState]) -> None:
        self.app = app
        self.wsgi_app = app.wsgi_app
        self._state = state
        self._registered = False
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not self._registered:
            with self._lock:
                if not self._registered:
                    from ..sandbox.outbox import outbox_blueprint

                    self.app.register_blueprint(
                        outbox_blueprint(self._state), url_prefix="/_dmmail"
                    )
                    self._registered = True
        return self.wsgi_app(environ, start_response)


# -- one app's handle ------------------------------------------------------------------------


class EmbeddedSandbox:
    """An app's claim on its embedded sandbox (``Mailer`` holds one in sandbox mode).

    Making one starts nothing; :meth:`get` finds or starts the sandbox the first time and
    logs where the app's email goes. The claim ends with :meth:`release`, or when this object
    is garbage-collected (with its app), or at exit; the sandbox stops with its last claim.

    :param app: the app (its instance folder, and its seed's files).
    :param settings: the app's settings (seed, audiences, ``sandbox_persist``).
    """

    def __init__(self, app: Flask, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        # As at init_app: Flask's CLI may set app.debug again after the app is made.
        self._level = logging.WARNING if app.debug else logging.INFO
        #: Where the sandbox lives (None: in memory).
        self.folder: pathlib.Path | None = (
            pathlib.Path(app.instance_path) / FOLDER_NAME if settings.sandbox_persist else None
        )
        self._shared: Shared | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._lock = threading.Lock()
        # Read now, though the sandbox starts later: a damaged templates file or a bad seed
        # fails init_app, naming it, not the first send.
        try:
            self._seed = embedded_seed(app, settings)
        except (OSError, ValueError) as error:
            raise ConfigurationError(
                "DM_NOTIFY_SANDBOX_TEMPLATES", f"the sandbox's seed could not be read: {error}"
            ) from None

    def __repr__(self) -> str:
        where = "memory" if self.folder is None else str(self.folder)
        return f"<EmbeddedSandbox app={self.app.name!r} in {where}>"

    @property
    def started(self) -> bool:
        """True once :meth:`get` has found or started the sandbox (and until :meth:`release`)."""
        return self._shared is not None

    def get(self) -> Sandbox | RemoteSandbox:
        """The sandbox: found or started on the first call."""
        shared = self._shared
        if shared is None:
            with self._lock:
                if self._shared is None:
                    self._connect()
                shared = self._shared
                assert shared is not None
        return shared.current()

    def _connect(self) -> None:
        seed = self._seed
        audiences = {list_id: name for name, list_id in self.settings.audiences.items()}
        shared = acquire(self.folder, seed, audiences)
        self._shared = shared
        self._finalizer = weakref.finalize(self, release, shared.key, os.getpid())
        self._announce(shared)
        log_stand_ins(self.app, seed)

    def _announce(self, shared: Shared) -> None:
        sandbox = shared.current()
        level = self._level
        if isinstance(sandbox, RemoteSandbox):
            logger.log(
                level,
                "flask-dmmail sandbox mode: emails go to the local Notify sandbox of this "
                "app's process %s at %s (found in %s); read them at /_dmmail/ in this app",
                sandbox.pid,
                sandbox.url,
                shared.folder.path if shared.folder is not None else "-",
            )
        elif shared.folder is not None:
            logger.log(
                level,
                "flask-dmmail sandbox mode: emails go to a local Notify sandbox at %s, kept in "
                "%s and shared by this app's processes; read them at /_dmmail/ in this app",
                sandbox.url,
                shared.folder.path,
            )
        else:
            logger.log(
                level,
                "flask-dmmail sandbox mode: emails go to a local Notify sandbox at %s; read "
                "them at /_dmmail/ in this app",
                sandbox.url,
            )

    def release(self) -> None:
        """End this app's claim (the sandbox stops when no app of the process uses it)."""
        with self._lock:
            finalizer, self._finalizer = self._finalizer, None
            self._shared = None
        if finalizer is not None:
            finalizer()


def check_audiences(settings: Settings) -> None:
    """Refuse, before anything starts, an audience list id the sandbox cannot create."""
    for name, list_id in settings.audiences.items():
        if "server" in list_id or "/" in list_id or not list_id:
            raise ConfigurationError(
                "DM_MAILCHIMP_AUDIENCES",
                f"the sandbox cannot create the audience {name!r} under its list id "
                "(an id must not contain 'server').",
            )
