"""A sandbox's home in a folder: one process runs it, the others find it, its data outlives them.

The embedded sandbox of an app uses ``<instance folder>/dmmail_sandbox/``
(:mod:`flask_dmmail.embedded`); the files are private to the user (the folder is ``0700``,
the files ``0600``):

``lock``
    Held (``flock``) by the one process that runs the sandbox, for as long as it runs it. The
    operating system lets go of it when that process ends, however it ends (even ``kill -9``),
    so a lock is never left behind.
``server.json``
    Written by that process once its sandbox listens: its pid, the sandbox's URL, its keys
    (which open only this sandbox). The other processes of the app read it and use that
    sandbox over HTTP. Removed when the sandbox stops; a stale one (after a kill) is replaced
    by the next process that takes the lock.
``state.json``
    The sandbox's data (:mod:`~flask_dmmail.sandbox.snapshot`): written by the running
    process soon after each change (:class:`Saver`, atomically: a new file renamed over the
    old one, so a kill leaves the last complete copy) and when it stops; read by the next
    process that runs the sandbox. It holds the emails sent, recipients and personalisation
    included: it never leaves the instance folder, which is not committed (Flask's own advice;
    add ``instance/`` to ``.gitignore``).

A file that cannot be read is set aside as ``state.json.unreadable`` (never deleted) and the
sandbox starts empty.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .models import SandboxKeys
from .snapshot import snapshot
from .state import SandboxState

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: the embedded sandbox stays in memory
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCKING", "SandboxFolder", "Saver", "ServerInfo"]

logger = logging.getLogger("flask_dmmail")

#: Whether this platform can lock a file (POSIX ``flock``); without it nothing is shared.
LOCKING = fcntl is not None


@dataclass(frozen=True)
class ServerInfo:
    """What ``server.json`` says: the process running the sandbox and how to reach it."""

    pid: int
    url: str
    service_id: str
    keys: SandboxKeys = field(repr=False)
    mailchimp_key: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``server.json``."""
        return {
            "pid": self.pid,
            "url": self.url,
            "service_id": self.service_id,
            "keys": {"test": self.keys.test, "team": self.keys.team, "live": self.keys.live},
            "mailchimp_key": self.mailchimp_key,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ServerInfo | None:
        """The info in ``data``, or None when it is not what :meth:`to_dict` writes."""
        try:
            keys = data["keys"]
            return cls(
                pid=int(data["pid"]),
                url=str(data["url"]),
                service_id=str(data["service_id"]),
                keys=SandboxKeys(test=keys["test"], team=keys["team"], live=keys["live"]),
                mailchimp_key=str(data["mailchimp_key"]),
            )
        except (TypeError, KeyError, ValueError):
            return None


class SandboxFolder:
    """The sandbox's files in ``path`` (created on :meth:`open`), and the lock over them.

    :param path: the folder, such as ``<instance folder>/dmmail_sandbox``.
    """

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.lock_path = path / "lock"
        self.server_path = path / "server.json"
        self.state_path = path / "state.json"
        self._fd: int | None = None
        self.owned = False

    def __repr__(self) -> str:
        return f"<SandboxFolder {str(self.path)!r} owned={self.owned}>"

    def open(self) -> None:
        """Create the folder (``0700``) and open the lock file. Raises OSError when the folder
        cannot be made or written (a read-only file system, say)."""
        if fcntl is None:  # pragma: no cover
            raise OSError("file locks are not available on this platform")
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_own(self) -> bool:
        """Take the lock if no other process holds it; True when this process holds it."""
        if self.owned:
            return True
        if self._fd is None or fcntl is None:
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        self.owned = True
        for stale in self.path.glob(".*.tmp"):  # a write cut short by a kill
            with contextlib.suppress(OSError):
                stale.unlink()
        return True

    def close(self) -> None:
        """Let go of the lock (when held) and close the lock file."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self.owned and fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        self.owned = False
        with contextlib.suppress(OSError):
            os.close(fd)

    def forget_after_fork(self) -> None:
        """In a forked child: close the inherited lock file without unlocking it (the lock
        belongs to the parent, which shares it)."""
        fd, self._fd = self._fd, None
        self.owned = False
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- server.json ----------------------------------------------------------------------

    def read_server(self) -> ServerInfo | None:
        """What ``server.json`` says, or None when it is missing or half-written."""
        try:
            return ServerInfo.from_dict(json.loads(self.server_path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def write_server(self, info: ServerInfo) -> None:
        """Publish the running sandbox (only the lock's holder does)."""
        self._write(self.server_path, info.to_dict())

    def remove_server(self) -> None:
        """Withdraw ``server.json`` when it is this process's."""
        info = self.read_server()
        if info is not None and info.pid == os.getpid():
            with contextlib.suppress(OSError):
                self.server_path.unlink()

    # -- state.json -----------------------------------------------------------------------

    def state_stamp(self) -> tuple[int, int] | None:
        """The state file's modification time and size (None without one): a new stamp
        means new data."""
        try:
            stat = self.state_path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def load_state(self) -> dict[str, Any] | None:
        """The saved data, or None when there is none. A file that is not JSON is set aside."""
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self.set_aside("it is not JSON")
            return None
        return data

    def set_aside(self, reason: str) -> None:
        """Rename an unusable state file to ``state.json.unreadable`` and say so."""
        target = self.state_path.with_name("state.json.unreadable")
        with contextlib.suppress(OSError):
            os.replace(self.state_path, target)
        logger.warning(
            "flask-dmmail: the sandbox's saved state could not be read (%s): it was moved to "
            "%s and the sandbox starts empty.",
            reason,
            target,
        )

    def save_state(self, data: dict[str, Any]) -> None:
        """Write ``data`` as the state file, atomically."""
        self._write(self.state_path, data)

    def _write(self, path: pathlib.Path, data: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


class Saver:
    """Saves a state to its folder soon after each change, from one daemon thread.

    :meth:`mark` says something changed; the thread waits a moment (so a burst of sends is
    one write), then writes. It waits at least twice as long as the last write took, so saving
    never takes more than a third of the time, however large the outbox grows. :meth:`stop`
    writes one last time.

    :param folder: where to write (its lock is held by this process).
    :param state: the running sandbox's state.
    :param extra: more keys for the file (the sandbox's port, tried again at the next start).
    """

    #: The shortest wait between a change and its write, in seconds.
    PAUSE = 0.2

    def __init__(self, folder: SandboxFolder, state: SandboxState, extra: dict[str, Any]) -> None:
        self.folder = folder
        self.state = state
        self.extra = extra
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._pause = self.PAUSE
        self._write_lock = threading.Lock()
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="dmmail-sandbox-saver", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def mark(self) -> None:
        """Something changed: write soon."""
        self._changed.set()

    def save(self) -> None:
        """Write now (errors are logged once, never raised: the sandbox keeps running)."""
        with self._write_lock:
            started = time.monotonic()
            try:
                self.folder.save_state({**snapshot(self.state), **self.extra})
            except (OSError, TypeError, ValueError) as error:
                if not self._failed:
                    logger.warning(
                        "flask-dmmail: the sandbox's state could not be saved to %s (%s); it "
                        "lives in memory until this process ends.",
                        self.folder.state_path,
                        type(error).__name__,
                    )
                self._failed = True
                return
            self._pause = max(self.PAUSE, 2 * (time.monotonic() - started))

    def _run(self) -> None:
        while True:
            self._changed.wait()
            if self._stopping.wait(self._pause):
                return
            self._changed.clear()
            self.save()

    def stop(self) -> None:
        """Stop the thread and write one last time."""
        self._stopping.set()
        self._changed.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self.save()
