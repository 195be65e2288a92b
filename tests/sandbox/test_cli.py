"""``python -m flask_dmmail.sandbox``: the four lines it prints, seed files, Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from notifications_python_client.notifications import NotificationsAPIClient

from tests.sandbox.notify_helpers import raises_http, v2_errors

TEMPLATE_ID = "9e8d7c6b-5a49-4838-a726-150f4e3d2c1b"
REPLY_ID = "8d7c6b5a-4938-4726-9150-f4e3d2c1b0a9"
KEY = r"[\w-]+-[0-9a-f-]{36}-[0-9a-f-]{36}"


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flask_dmmail.sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def run() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _banner(process: subprocess.Popen[str]) -> dict[str, str]:
    assert process.stdout is not None
    lines = [process.stdout.readline().rstrip("\n") for _ in range(5)]
    assert re.fullmatch(r"base url: http://127\.0\.0\.1:\d+", lines[0]), lines
    assert re.fullmatch(f"test key: {KEY}", lines[1]), lines
    assert re.fullmatch(f"team key: {KEY}", lines[2]), lines
    assert re.fullmatch(f"live key: {KEY}", lines[3]), lines
    assert re.fullmatch(r"mailchimp key: [0-9a-f]{32}-us5", lines[4]), lines
    return dict(line.split(": ", 1) for line in lines)


SEED = {
    "templates": [
        {"id": TEMPLATE_ID, "name": "Hi", "subject": "Hi ((name))", "body": "Body", "type": "email"}
    ],
    "reply_to_addresses": [{"id": REPLY_ID, "email_address": "reply@example.gov.uk"}],
    "team_members": ["member@example.gov.uk"],
}


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_prints_four_lines_serves_the_seed_and_stops_on_ctrl_c(
    tmp_path: Path, run: list[subprocess.Popen[str]], suffix: str
) -> None:
    seed = tmp_path / f"seed{suffix}"
    if suffix == ".json":
        seed.write_text(json.dumps(SEED))
    else:
        import yaml

        seed.write_text(yaml.safe_dump(SEED))
    process = _start("--seed", str(seed), "--restricted")
    run.append(process)
    banner = _banner(process)
    live = NotificationsAPIClient(banner["live key"], base_url=banner["base url"])
    test = NotificationsAPIClient(banner["test key"], base_url=banner["base url"])
    try:
        assert live.get_template(TEMPLATE_ID)["name"] == "Hi"
        sent = live.send_email_notification(
            "member@example.gov.uk", TEMPLATE_ID, {"name": "Ada"}, email_reply_to_id=REPLY_ID
        )
        assert sent["content"]["subject"] == "Hi Ada"
        error = raises_http(
            lambda: live.send_email_notification("x@example.com", TEMPLATE_ID, {"name": "A"})
        )
        assert error.message == v2_errors(
            "BadRequestError",
            "Can’t send to this recipient when service is in trial mode – see "
            "https://www.notifications.service.gov.uk/trial-mode",
        )
        assert test.send_email_notification("x@example.com", TEMPLATE_ID, {"name": "A"})["id"]
    finally:
        live.request_session.close()
        test.request_session.close()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert "x@example.com" not in stderr and "member@example.gov.uk" not in stderr


def test_fixed_service_id_and_auto_templates(run: list[subprocess.Popen[str]]) -> None:
    service_id = "11111111-2222-4333-8444-555555555555"
    process = _start("--service-id", service_id, "--auto-templates")
    run.append(process)
    banner = _banner(process)
    assert banner["live key"][-73:-37] == service_id
    client = NotificationsAPIClient(banner["test key"], base_url=banner["base url"])
    try:
        sent = client.send_email_notification("a@example.com", TEMPLATE_ID, {"code": "1"})
        assert sent["content"]["body"] == "code: 1"
    finally:
        client.request_session.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_allow_host_adds_names_for_the_pages_and_controls(
    run: list[subprocess.Popen[str]],
) -> None:
    process = _start("--allow-host", "notify-sandbox", "--allow-host", "outbox.test")
    run.append(process)
    url = _banner(process)["base url"]
    for host in ("notify-sandbox", "outbox.test:6011", "localhost"):
        assert requests.get(f"{url}/", headers={"Host": host}, timeout=30).status_code == 200
    for host in ("evil.example", "notify-sandbox.evil.example"):
        page = requests.get(f"{url}/_sandbox/state", headers={"Host": host}, timeout=30)
        assert page.status_code == 403
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_bad_seed_file_is_an_error(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"templates": [{"id": "not-a-uuid", "body": "x"}]}))
    result = subprocess.run(
        [sys.executable, "-m", "flask_dmmail.sandbox", "--port", "0", "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "templates[].id must be a UUID" in result.stderr
    assert result.stdout == ""
