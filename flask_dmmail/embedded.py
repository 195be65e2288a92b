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
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import pathlib
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from flask import Flask, request

from .config import Settings
from .errors import ConfigurationError, NotifyUnavailableError
from .sandbox import Sandbox, SandboxKeys, SandboxState, create_app
from .sandbox.folder import LOCKING, SandboxFolder, Saver, ServerInfo
from .sandbox.seeding import load_seed
from .sandbox.snapshot import restore, service_id

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "FIND_TIMEOUT",
    "FOLDER_NAME",
    "EmbeddedSandbox",
    "EmbeddedSeed",
    "OutboxOnFirstRequest",
    "RemoteSandbox",
    "embedded_seed",
]

logger = logging.getLogger("flask_dmmail")

#: The embedded sandbox's folder inside the app's instance folder.
FOLDER_NAME = "dmmail_sandbox"
#: How long a process waits, at most, for the process holding the folder's lock to publish
#: its sandbox (seconds). Generous: that process may be loading a large saved outbox.
FIND_TIMEOUT = 30.0


# -- the seed ------------------------------------------------------------------------------------
# MERGE(X8a): flask_dmmail.templates_file provides embedded_seed and EmbeddedSeed (the app's
# pulled templates and stand-ins); at merge, import them from there and delete these two.


@dataclass(frozen=True)
class EmbeddedSeed:
    """What the embedded sandbox is seeded with: the seed, the names of stand-in templates,
    and a key that is equal for equal seeds (apps with the same key share a sandbox)."""

    seed: Mapping[str, Any] | str | None
    stand_ins: tuple[str, ...] = ()
    key: str = ""


def embedded_seed(app: Flask, settings: Settings) -> EmbeddedSeed:
    """The seed of ``app``'s embedded sandbox: ``DM_NOTIFY_SANDBOX_TEMPLATES``."""
    seed = settings.sandbox_seed
    data = load_seed(seed) if seed is not None else {}
    text = json.dumps(data, sort_keys=True, default=str)
    return EmbeddedSeed(seed, (), hashlib.sha256(text.encode()).hexdigest())


def _new_state(seed: EmbeddedSeed, *, service_id: str | None) -> SandboxState:
    # MERGE(X8a): the one place the embedded sandbox's state is made from an app's seed.
    return SandboxState(seed.seed, auto_templates=True, service_id=service_id)


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
                copy = _new_state(self._seed, service_id=None)
                data = self._folder.load_state()
                if data is not None:
                    try:
                        restore(copy, data, schedule=False)
                    except ValueError:
                        copy = _new_state(self._seed, service_id=None)
                self._copy = (stamp, copy)
            return self._copy[1]

    def __repr__(self) -> str:
        return f"<RemoteSandbox {self.url} pid={self.pid}>"


def _answers(info: ServerInfo) -> bool:
    """True when the sandbox ``info`` names answers as the service it names."""
    try:
        response = requests.get(f"{info.url}/_sandbox/state", timeout=5)
        return bool(response.ok and response.json().get("service_id") == info.service_id)
    except (requests.RequestException, ValueError, AttributeError):
        return False


# -- one sandbox of this process and the apps using it -------------------------------------


class _Shared:
    """One sandbox this process uses (runs, or reaches in another process) and its users."""

    def __init__(self, key: Hashable, folder: SandboxFolder | None) -> None:
        self.key = key
        self.folder = folder
        self.pid = os.getpid()
        self.users = 0
        self.sandbox: Sandbox | RemoteSandbox | None = None
        self.saver: Saver | None = None
        self.lock = threading.Lock()
        self.seeds: dict[str, EmbeddedSeed] = {}
        self.audiences: dict[str, str] = {}  # list id -> name

    def add(self, seed: EmbeddedSeed, audiences: Mapping[str, str]) -> None:
        """Seed the sandbox with one more app's templates and audiences (started if need be)."""
        with self.lock:
            new_seed = seed.key not in self.seeds
            self.seeds.setdefault(seed.key, seed)
            new_lists = {k: v for k, v in audiences.items() if k not in self.audiences}
            self.audiences.update(new_lists)
            if self.sandbox is None:
                if self.folder is None:
                    self._run_here(None)
                else:
                    self._find_or_run()
            elif isinstance(self.sandbox, Sandbox):
                if new_seed and seed.seed is not None:
                    self.sandbox.state.seed(seed.seed)
                self._ensure_lists(self.sandbox.state, new_lists)
            elif new_seed or new_lists:
                self._seed_remote(self.sandbox, [seed] if new_seed else [], new_lists)

    def current(self) -> Sandbox | RemoteSandbox:
        """The sandbox; when the process that ran it has ended, this process takes over."""
        sandbox = self.sandbox
        if isinstance(sandbox, RemoteSandbox) and self.folder is not None:
            with self.lock:
                if isinstance(self.sandbox, RemoteSandbox) and self.folder.try_own():
                    self._run_here(self.folder.load_state())
            sandbox = self.sandbox
        assert sandbox is not None
        return sandbox

    def _find_or_run(self) -> None:
        folder = self.folder
        assert folder is not None
        deadline = time.monotonic() + FIND_TIMEOUT
        while True:
            if folder.try_own():
                self._run_here(folder.load_state())
                return
            info = folder.read_server()
            if info is not None and info.pid != os.getpid() and _answers(info):
                remote = RemoteSandbox(info, folder, next(iter(self.seeds.values())))
                self._seed_remote(remote, list(self.seeds.values()), self.audiences)
                self.sandbox = remote
                return
            if time.monotonic() >= deadline:
                holder = f"process {info.pid}" if info is not None else "another process"
                raise NotifyUnavailableError(
                    f"The app's sandbox is locked by {holder} ({folder.lock_path}), which does "
                    "not answer. Stop that process, or set DM_MAIL_SANDBOX_PERSIST = False to "
                    "keep this process's sandbox in memory."
                )
            time.sleep(0.05)

    def _run_here(self, data: dict[str, Any] | None) -> None:
        seeds = list(self.seeds.values())
        saved_id = service_id(data) if data is not None else None
        fixed_id = saved_id or (str(uuid.uuid4()) if self.folder is not None else None)
        state = self._state(seeds, fixed_id, data)
        self._ensure_lists(state, self.audiences)
        app = create_app(state)
        saver = None
        if self.folder is not None:
            saver = Saver(self.folder, state, {"port": 0})
            _save_on_change(app, state, saver)
        port = data.get("port") if data is not None else 0
        try:
            sandbox = Sandbox.serve(app, port=port if isinstance(port, int) else 0)
        except OSError:  # the port is taken now: any free one
            sandbox = Sandbox.serve(app, port=0)
        if self.folder is not None and saver is not None:
            saver.extra["port"] = sandbox.port
            info = ServerInfo(
                pid=os.getpid(),
                url=sandbox.url,
                service_id=state.service_id,
                keys=state.keys,
                mailchimp_key=state.mailchimp.api_key,
            )
            self.folder.write_server(info)
            saver.start()
            saver.mark()  # the port and the service id, at once
        self.sandbox = sandbox
        self.saver = saver

    def _state(
        self, seeds: list[EmbeddedSeed], fixed_id: str | None, data: dict[str, Any] | None
    ) -> SandboxState:
        state = _new_state(seeds[0], service_id=fixed_id)
        for extra in seeds[1:]:
            if extra.seed is not None:
                state.seed(extra.seed)
        if data is not None:
            try:
                restore(state, data)
            except ValueError as error:
                assert self.folder is not None
                self.folder.set_aside(str(error))
                state.close()
                return self._state(seeds, fixed_id, None)
        return state

    @staticmethod
    def _ensure_lists(state: SandboxState, audiences: Mapping[str, str]) -> None:
        for list_id, name in audiences.items():
            state.mailchimp.ensure_list(list_id, name)

    @staticmethod
    def _seed_remote(
        remote: RemoteSandbox, seeds: list[EmbeddedSeed], audiences: Mapping[str, str]
    ) -> None:
        body: dict[str, Any] = {}
        for seed in seeds:
            if seed.seed is not None:
                for key, value in load_seed(seed.seed).items():
                    if isinstance(value, list) and isinstance(body.get(key), list):
                        body[key] = [*body[key], *value]
                    elif key != "mailchimp":
                        body[key] = value
        lists = [{"id": list_id, "name": name} for list_id, name in audiences.items()]
        if lists:
            body["mailchimp"] = {"lists": lists}
        if not body:
            return
        try:
            response = requests.post(f"{remote.url}/_sandbox/seed", json=body, timeout=30)
        except requests.RequestException as error:
            raise NotifyUnavailableError(
                f"The sandbox of process {remote.pid} did not take this app's templates "
                f"({type(error).__name__}). Try again."
            ) from None
        if not response.ok:
            raise ConfigurationError(
                "DM_NOTIFY_SANDBOX_TEMPLATES",
                f"the sandbox of process {remote.pid} refused this app's templates or "
                f"audiences ({response.status_code}).",
            )

    def stop(self) -> None:
        """Stop the sandbox when it runs here (saving it a last time), and let go of the
        folder's lock."""
        sandbox, self.sandbox = self.sandbox, None
        folder = self.folder
        if folder is not None and folder.owned:
            folder.remove_server()
        if isinstance(sandbox, Sandbox):
            sandbox.stop()
        if self.saver is not None:
            self.saver.stop()
            self.saver = None
        if folder is not None:
            folder.close()


def _save_on_change(app: Flask, state: SandboxState, saver: Saver) -> None:
    """Mark ``saver`` after every request that may change the sandbox (every method but
    GET, HEAD and OPTIONS: a send, a Mailchimp change, a control) and every status change."""

    @app.teardown_request
    def _changed(error: BaseException | None) -> None:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            saver.mark()

    state.add_status_listener(lambda notification: saver.mark())


# -- the registry of this process's sandboxes ------------------------------------------------
# A finalizer may run inside any code, a registry operation included (the garbage collector
# runs where it likes), so it never waits for the lock: it queues its release, which the
# holder of the lock (or the finalizer, when the lock is free) carries out.

_registry: dict[Hashable, _Shared] = {}
_registry_lock = threading.Lock()
_pending: collections.deque[Hashable] = collections.deque()


def _drain() -> None:
    """Carry out the queued releases (the registry lock is held)."""
    while _pending:
        key = _pending.popleft()
        shared = _registry.get(key)
        if shared is None:
            continue
        shared.users -= 1
        if shared.users <= 0:
            del _registry[key]
            try:
                shared.stop()
            except Exception:
                logger.exception("flask-dmmail: the embedded sandbox did not stop cleanly")


def _drain_soon() -> None:
    while _pending and _registry_lock.acquire(blocking=False):
        try:
            _drain()
        finally:
            _registry_lock.release()


def _release(key: Hashable, pid: int) -> None:
    """One app no longer uses the sandbox ``key`` (a finalizer: never raises, never waits)."""
    if os.getpid() != pid:  # a forked child: the sandbox is its parent's
        return
    _pending.append(key)
    _drain_soon()


def _acquire(
    folder_path: pathlib.Path | None, seed: EmbeddedSeed, audiences: Mapping[str, str]
) -> _Shared:
    """The shared sandbox for an app (found or started), with one more user."""
    try:
        with _registry_lock:
            _drain()
            folder: SandboxFolder | None = None
            key: Hashable = ("memory", seed.key)
            if folder_path is not None and LOCKING:
                key = ("folder", str(folder_path.resolve()))
                if key not in _registry:
                    folder = SandboxFolder(folder_path)
                    try:
                        folder.open()
                    except OSError as error:
                        logger.warning(
                            "flask-dmmail: the sandbox cannot keep its state in %s (%s); it "
                            "lives in this process's memory instead.",
                            folder_path,
                            error.strerror or type(error).__name__,
                        )
                        folder = None
                        key = ("memory", seed.key)
            shared = _registry.get(key)
            created = shared is None
            if shared is None:
                shared = _Shared(key, folder)
            try:
                shared.add(seed, audiences)
            except BaseException:
                if created:
                    shared.stop()
                raise
            _registry[key] = shared
            shared.users += 1
            return shared
    finally:
        _drain_soon()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()  # another thread may have held it at the fork
    for shared in list(_registry.values()):
        if shared.folder is not None:
            shared.folder.forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


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
                    from .sandbox.outbox import outbox_blueprint

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
        self._shared: _Shared | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._lock = threading.Lock()

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
        try:
            seed = embedded_seed(self.app, self.settings)
        except (OSError, ValueError) as error:
            raise ConfigurationError(
                "DM_NOTIFY_SANDBOX_TEMPLATES", f"the sandbox's seed could not be read: {error}"
            ) from None
        audiences = {list_id: name for name, list_id in self.settings.audiences.items()}
        shared = _acquire(self.folder, seed, audiences)
        self._shared = shared
        self._finalizer = weakref.finalize(self, _release, shared.key, os.getpid())
        self._announce(shared)

    def _announce(self, shared: _Shared) -> None:
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
