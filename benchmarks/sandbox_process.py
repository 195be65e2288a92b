"""The sandbox in another process, for the benchmarks: ``python -m flask_dmmail.sandbox``.

A benchmark that runs the sandbox in its own process keeps the server's work off the
interpreter that runs the clients being measured.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from flask import Flask

import flask_dmmail
from flask_dmmail import DMMail, Mailer

__all__ = ["SandboxProcess"]


class SandboxProcess:
    """``python -m flask_dmmail.sandbox --port 0 --seed <seed> *options`` in a subprocess,
    with the base URL and test key it prints. Use it as a context manager."""

    def __init__(self, seed: Mapping[str, Any], *options: str) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        seed_path = Path(self._tmp.name) / "seed.json"
        seed_path.write_text(json.dumps(seed), encoding="utf-8")
        root = str(Path(next(iter(flask_dmmail.__path__))).resolve().parent)
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        command = [sys.executable, "-m", "flask_dmmail.sandbox", "--port", "0"]
        self.process = subprocess.Popen(
            [*command, "--seed", str(seed_path), *options],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        assert self.process.stdout is not None
        banner: dict[str, str] = {}
        while "mailchimp key" not in banner:
            line = self.process.stdout.readline()
            if not line:
                self.stop()
                raise SystemExit("the sandbox did not start (see its output above)")
            label, _, value = line.strip().partition(": ")
            banner[label] = value
        self.url = banner["base url"]
        self.key = banner["test key"]

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def mailer(self, name: str, templates: Mapping[str, str]) -> Mailer:
        """A Mailer of a new app that sends to this sandbox as it would to Notify."""
        app = Flask(name)
        app.config.update(
            SECRET_KEY="benchmark",
            DM_NOTIFY_KEY=self.key,
            DM_NOTIFY_BASE_URL=self.url,
            DM_NOTIFY_TEMPLATES=dict(templates),
            DM_MAIL_SANDBOX=False,
            DM_ENVIRONMENT="production",
        )
        return DMMail().init_app(app)

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call a ``/_sandbox/`` control endpoint; its JSON answer (changes are sent as JSON)."""
        if body is None and method != "GET":
            body = {}  # the sandbox refuses a POST or DELETE that is not application/json
        response = requests.request(method, f"{self.url}/_sandbox/{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def check_outbox(self, expected: int) -> tuple[int, int, int]:
        """(stored, duplicate references, missing) for ``expected`` distinct emails."""
        notifications = self.control("GET", "outbox")["notifications"]
        references = Counter(n["reference"] for n in notifications)
        duplicates = sum(count - 1 for count in references.values())
        return len(notifications), duplicates, expected - len(references)

    def stop(self) -> None:
        """End the process (SIGTERM, then SIGKILL after 10 s) and remove the seed file."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._tmp.cleanup()
