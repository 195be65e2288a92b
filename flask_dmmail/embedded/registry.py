"""The sandboxes this process uses, each shared by the apps that use it, and their lifetimes.

:func:`acquire` finds or starts the sandbox of an app (in memory, keyed by its seed; or in its
instance folder, run here or found in another process) and counts one more user;
:func:`release` (a finalizer) counts one fewer and stops the sandbox after its last user.
"""

from __future__ import annotations

import collections
import logging
import os
import pathlib
import threading
import time
import uuid
from collections.abc import Hashable, Mapping
from typing import Any

import requests
from flask import Flask, request

from ..errors import ConfigurationError, NotifyUnavailableError
from ..sandbox import Sandbox, SandboxState, create_app
from ..sandbox.folder import LOCKING, SandboxFolder, Saver, ServerInfo
from ..sandbox.seeding import load_seed
from ..sandbox.snapshot import restore, service_id
from .remote import RemoteSandbox, answers
from .seed import EmbeddedSeed, new_state

logger = logging.getLogger("flask_dmmail")

__all__ = ["FIND_TIMEOUT", "Shared", "acquire", "release"]

#: How long a process waits, at most, for the process holding the folder's lock to publish
#: its sandbox (seconds). Generous: that process may be loading a large saved outbox.
FIND_TIMEOUT = 30.0


# -- one sandbox of this process and the apps using it -------------------------------------


class Shared:
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
            self._take_over_if_free()
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
        if isinstance(sandbox, RemoteSandbox):
            with self.lock:
                self._take_over_if_free()
            sandbox = self.sandbox
        assert sandbox is not None
        return sandbox

    def _take_over_if_free(self) -> None:
        """Run the sandbox here when the process that ran it has ended (the lock is free);
        ``self.lock`` is held."""
        folder = self.folder
        if isinstance(self.sandbox, RemoteSandbox) and folder is not None and folder.try_own():
            self._run_here(folder.load_state())

    def _find_or_run(self) -> None:
        folder = self.folder
        assert folder is not None
        deadline = time.monotonic() + FIND_TIMEOUT
        while True:
            if folder.try_own():
                self._run_here(folder.load_state())
                return
            info = folder.read_server()
            if info is not None and info.pid != os.getpid() and answers(info):
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
        state = new_state(seeds[0], service_id=fixed_id)
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

_registry: dict[Hashable, Shared] = {}
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


def release(key: Hashable, pid: int) -> None:
    """One app no longer uses the sandbox ``key`` (a finalizer: never raises, never waits)."""
    if os.getpid() != pid:  # a forked child: the sandbox is its parent's
        return
    _pending.append(key)
    _drain_soon()


def acquire(
    folder_path: pathlib.Path | None, seed: EmbeddedSeed, audiences: Mapping[str, str]
) -> Shared:
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
                shared = Shared(key, folder)
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
