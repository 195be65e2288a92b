"""One sandbox per app across processes: the dev server (``flask run``) and every ``flask dmmail``
command of an app see one outbox, kept in the app's instance folder, which survives a restart or
a killed process and two processes at once. Each app here lives in its own temporary folder,
with its own instance folder, and runs as a user runs it: ``python -m flask ...``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from flask_dmmail import DMMail, Mailer
from flask_dmmail.embedded import RemoteSandbox
from flask_dmmail.sandbox import Sandbox

from .conftest import SEED, TEMPLATES
from .secrets_scan import record_output, register_secret

#: A generous bound on any one command (a slow shared machine; no test depends on speed).
TIMEOUT = 180

APP = """
from flask import Flask
from flask_dmmail import DMMail

app = Flask(__name__)
app.config.update(
    SECRET_KEY="not-secret",
    DEBUG=True,
    DM_NOTIFY_TEMPLATES={templates!r},
    DM_NOTIFY_SANDBOX_TEMPLATES={seed!r},
    DM_MAILCHIMP_AUDIENCES={{"news": "a1b2c3d4e5"}},
    {extra}
)
DMMail(app)
"""

NAME = "Shared-Outbox-Reader"
TO = "shared.outbox@example.gov.uk"


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(NAME, TO)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for {what}")
        time.sleep(0.05)


class Project:
    """An app in a folder of its own, and the commands a developer runs there."""

    def __init__(self, root: Path, extra: str = "") -> None:
        self.root = root
        (root / "app.py").write_text(APP.format(templates=TEMPLATES, seed=SEED, extra=extra))
        self.instance = root / "instance"
        self.folder = self.instance / "dmmail_sandbox"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DM_", "FLASK_"))}
        self.env["FLASK_APP"] = "app"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flask", *args]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command("dmmail", *args),
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        record_output(f"flask dmmail {args[0]}", done.stdout + done.stderr)
        assert done.returncode == 0, done.stderr
        return done

    def send(self, name: str = NAME) -> str:
        done = self.cli("send", TO, "welcome", f"name={name}", "framework=DOS", "--json")
        sent_id: str = json.loads(done.stdout)["id"]
        return sent_id

    def outbox_ids(self) -> list[str]:
        return [n["id"] for n in json.loads(self.cli("outbox", "--json").stdout)]

    def saved_ids(self) -> set[str]:
        try:
            data = json.loads((self.folder / "state.json").read_text())
        except (OSError, ValueError):
            return set()
        return {n["id"] for n in data.get("notifications", [])}

    @contextmanager
    def dev_server(self) -> Iterator[DevServer]:
        """``flask run --debug --port 0`` (reloader and all) until Ctrl-C at the end."""
        process = subprocess.Popen(
            self.command("run", "--debug", "--port", "0"),
            cwd=self.root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        server = DevServer(process)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


class DevServer:
    """A running ``flask run`` and what it wrote to stderr."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_ready(self) -> None:
        def ready() -> bool:
            text = "".join(self.lines)
            found = re.search(r"Running on (http://127\.0\.0\.1:\d+)", text)
            if found:
                self.url = found.group(1)
            if self.process.poll() is not None:
                pytest.fail(f"flask run ended: {text}")
            return bool(found) and "Debugger PIN" in text

        wait_until(ready, "flask run to serve")

    def outbox_page(self) -> str:
        response = requests.get(f"{self.url}/_dmmail/", timeout=TIMEOUT)
        assert response.status_code == 200
        return response.text

    def stop(self, sig: int = signal.SIGINT) -> None:
        """Ctrl-C in its terminal (the whole process group), or another signal."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        self.process.wait(timeout=TIMEOUT)
        self._reader.join(timeout=TIMEOUT)
        if self.process.stderr is not None:
            self.process.stderr.close()
        record_output("flask run", "".join(self.lines))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def test_commands_of_one_app_see_one_outbox(project: Project) -> None:
    sent_id = project.send()
    status = project.cli("status", sent_id, "--json")
    assert json.loads(status.stdout)["status"] == "delivered"
    assert project.outbox_ids() == [sent_id]
    assert sent_id in project.saved_ids()


def test_the_dev_server_shows_what_a_command_sent_and_keeps_it_after_a_restart(
    project: Project,
) -> None:
    with project.dev_server() as server:
        assert f"Welcome, {NAME}" not in server.outbox_page()  # the server runs the sandbox
        sent_id = project.send()
        assert f"Welcome, {NAME}" in server.outbox_page()
        assert project.outbox_ids() == [sent_id]
    assert "Traceback" not in "".join(server.lines)
    with project.dev_server() as restarted:
        assert f"Welcome, {NAME}" in restarted.outbox_page()
        assert project.outbox_ids() == [sent_id]


def test_a_killed_dev_server_loses_nothing_saved(project: Project) -> None:
    with project.dev_server() as server:
        server.outbox_page()
        sent_id = project.send()
        wait_until(lambda: sent_id in project.saved_ids(), "the send to be saved")
        server.stop(signal.SIGKILL)
    assert project.outbox_ids() == [sent_id]  # this command runs the sandbox now
    second = project.send("Second-Reader")
    assert set(project.outbox_ids()) == {sent_id, second}


def test_two_commands_at_once_share_the_sandbox(project: Project) -> None:
    command = project.command(
        "dmmail", "send", TO, "welcome", f"name={NAME}", "framework=DOS", "--json"
    )
    processes = [
        subprocess.Popen(
            command,
            cwd=project.root,
            env=project.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    ids = []
    for process in processes:
        out, err = process.communicate(timeout=TIMEOUT)
        record_output("flask dmmail send", out + err)
        assert process.returncode == 0, err
        ids.append(json.loads(out)["id"])
    assert len(set(ids)) == 2
    assert set(project.outbox_ids()) == set(ids)


def test_help_prints_no_banner_and_starts_nothing(project: Project) -> None:
    for args in (["--help"], ["send", "--help"], ["outbox", "--help"]):
        done = project.cli(*args)
        assert "sandbox mode" not in done.stderr
    assert not project.instance.exists()


def test_the_data_lives_in_the_instance_folder_and_is_private(project: Project) -> None:
    project.send()
    assert sorted(p.name for p in project.folder.iterdir()) == ["lock", "state.json"]
    assert project.folder.stat().st_mode & 0o777 == 0o700
    assert (project.folder / "state.json").stat().st_mode & 0o777 == 0o600


def test_an_unreadable_state_file_is_set_aside(project: Project) -> None:
    project.folder.mkdir(parents=True)
    (project.folder / "state.json").write_text("{not json")
    sent_id = project.send()
    assert project.outbox_ids() == [sent_id]
    assert (project.folder / "state.json.unreadable").read_text() == "{not json"


def test_a_debug_app_on_real_notify_warns_once_under_the_reloader(tmp_path: Path) -> None:
    key = "my_test_key-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0"
    register_secret(key[-36:])
    project = Project(tmp_path, extra=f"DM_NOTIFY_KEY={key!r},")
    with project.dev_server() as server:
        pass  # the reloader's watcher and the process it started have both made the app
    warnings = [line for line in server.lines if "sends through real GOV.UK Notify" in line]
    assert len(warnings) == 1, warnings
    assert "https://api.notifications.service.gov.uk" in warnings[0]
    assert "'my_test_key'" in warnings[0]


# -- this process and another process of the same app --------------------------------------


def in_process_app(project: Project, monkeypatch: pytest.MonkeyPatch, **config: Any) -> Mailer:
    """The project's app made in this process, as a dev server would make it."""
    for name in ("DM_NOTIFY_KEY", "DM_NOTIFY_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    app = Flask("app", root_path=str(project.root), instance_path=str(project.instance))
    app.debug = True
    app.config.update(
        SECRET_KEY="s",
        DM_NOTIFY_TEMPLATES=TEMPLATES,
        DM_NOTIFY_SANDBOX_TEMPLATES=SEED,
        DM_MAIL_SANDBOX_PERSIST=True,
        DM_MAILCHIMP_AUDIENCES={"news": "a1b2c3d4e5"},
    )
    app.config.update(config)
    mailer = DMMail().init_app(app)
    return mailer


def sandbox_of(mailer: Mailer) -> object:
    """``mailer.sandbox`` now (which a type checker would take for what it was before)."""
    return mailer.sandbox


@pytest.fixture
def local_mailer(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailer]:
    mailer = in_process_app(project, monkeypatch)
    yield mailer
    mailer.close()


def test_a_command_sends_into_the_sandbox_this_process_runs(
    project: Project, local_mailer: Mailer
) -> None:
    sandbox = local_mailer.sandbox
    assert isinstance(sandbox, Sandbox)
    sent_id = project.send()
    assert [n.id for n in sandbox.state.outbox()] == [sent_id]
    assert local_mailer.get_notification(sent_id).status == "delivered"


def test_this_process_uses_the_dev_servers_sandbox_and_takes_over_when_it_ends(
    project: Project, local_mailer: Mailer
) -> None:
    with project.dev_server() as server:
        server.outbox_page()
        first = local_mailer.send(TO, "welcome", {"name": NAME, "framework": "DOS"})
        assert first is not None
        remote = local_mailer.sandbox
        assert isinstance(remote, RemoteSandbox)
        assert f"Welcome, {NAME}" in server.outbox_page()
        # The outbox page of this process reads the other's saved state.
        client = local_mailer.app.test_client()
        wait_until(lambda: first.id in client.get("/_dmmail/").get_data(as_text=True), "copy")
        audiences = local_mailer.mailchimp.all_audiences()
        assert [a.id for a in audiences] == ["a1b2c3d4e5"]
    second = local_mailer.send(TO, "welcome", {"name": "Second-Reader", "framework": "DOS"})
    assert second is not None
    sandbox = local_mailer.sandbox
    assert isinstance(sandbox, Sandbox)
    assert {n.id for n in sandbox.state.outbox()} == {first.id, second.id}
    assert [a.id for a in local_mailer.mailchimp.all_audiences()] == ["a1b2c3d4e5"]


def test_an_app_made_after_the_dev_server_ended_takes_over(
    project: Project, local_mailer: Mailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with project.dev_server() as server:
        server.outbox_page()
        first = local_mailer.send(TO, "welcome", {"name": NAME, "framework": "DOS"})
        assert first is not None and isinstance(local_mailer.sandbox, RemoteSandbox)
    # Before local_mailer uses it again, and with an audience more to give the sandbox.
    audiences = {"news": "a1b2c3d4e5", "events": "f6e5d4c3b2"}
    another = in_process_app(project, monkeypatch, DM_MAILCHIMP_AUDIENCES=audiences)
    try:
        second = another.send(TO, "reset_password", {"url": "https://www.example.gov.uk/r"})
        assert second is not None
        sandbox = another.sandbox
        assert isinstance(sandbox, Sandbox) and sandbox_of(local_mailer) is sandbox
        assert {n.id for n in sandbox.state.outbox()} == {first.id, second.id}
        assert {a["id"] for a in sandbox.state.mailchimp.lists()} == set(audiences.values())
    finally:
        another.close()


def test_a_mailchimp_change_survives_a_restart(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_secret("member.kept@digitalmarketplace.service.gov.uk")
    mailer = in_process_app(project, monkeypatch)
    mailer.mailchimp.subscribe("news", "member.kept@digitalmarketplace.service.gov.uk")
    mailer.close()
    again = in_process_app(project, monkeypatch)
    try:
        assert again.mailchimp.member_count("news") == 1
    finally:
        again.close()


def test_apps_in_memory_ignore_the_instance_folder(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DM_MAIL_SANDBOX_PERSIST", "false")
    project.env["DM_MAIL_SANDBOX_PERSIST"] = "false"
    project.send()
    assert not project.instance.exists()
