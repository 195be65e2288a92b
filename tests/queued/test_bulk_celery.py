"""``send_bulk(..., via="celery")`` and ``flask dmmail bulk-send --via celery``: chunks sent
by real Celery worker processes under one Redis journal; the command that started the run
reports for all of them; a rerun resumes; the command SIGKILLed three times (and every
worker with it, mid-send, twice), then a resume: every email exactly once."""

from __future__ import annotations

import csv
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from flask_dmmail.bulk import BulkProgress
from flask_dmmail.errors import BulkInterruptedError, InvalidOptionError, JournalError
from flask_dmmail.sandbox import Sandbox
from tests.celery_app import mailer_of, make_celery, make_web_app
from tests.celery_support import ROOT, Worker, wait_for, worker_environment
from tests.secrets_scan import record_output, register_secret

Rows = list[tuple[str, dict[str, str]]]


def people(count: int, tag: str = "bulk") -> Rows:
    rows = [
        (f"{tag}.person{i}@example.gov.uk", {"url": f"https://reset.example.gov.uk/{tag}/{i}"})
        for i in range(count)
    ]
    register_secret(*(address for address, _ in rows), kind="personal")
    return rows


def assert_exactly_once(sandbox: Sandbox, rows: Sequence[tuple[str, Any]]) -> None:
    outbox = sandbox.state.outbox()
    assert set(Counter(n.reference for n in outbox).values()) == {1}
    assert Counter(n.email_address for n in outbox) == Counter(address for address, _ in rows)


@pytest.fixture
def web(sandbox: Sandbox, clean_redis: str) -> Iterator[Flask]:
    app = make_web_app(sandbox, make_celery(clean_redis))
    yield app
    mailer_of(app).close()


def run_keys(url: str, name: str) -> dict[str, Any]:
    """Everything the run keeps in Redis, as text."""
    client = redis.Redis.from_url(url, decode_responses=True)
    found: dict[str, Any] = {}
    for key in client.scan_iter(f"dmmail:bulk:{{{name}}}:*"):
        kind = client.type(key)
        if kind == "hash":
            found[key] = client.hgetall(key)
        elif kind == "set":
            found[key] = sorted(client.smembers(key))
        else:
            found[key] = client.get(key)
    return found


def test_workers_send_every_chunk_once_and_a_rerun_sends_nothing(
    web: Flask, sandbox: Sandbox, clean_redis: str, workers: Callable[..., Worker]
) -> None:
    rows = people(45)
    rows.insert(10, ("not an address", {"url": "https://reset.example.gov.uk/invalid-row"}))
    rows.append(rows[3])  # a duplicate row
    refused = ("refused.person@example.gov.uk", {"other": "no-url-value-9"})  # no ((url))
    register_secret(refused[0], kind="personal")
    rows.append(refused)
    env = worker_environment(sandbox, clean_redis)
    for _ in range(2):
        workers(env, concurrency=2).wait_ready()
    mailer = mailer_of(web)
    seen: list[Any] = []
    report = mailer.send_bulk(
        "reset_password", rows, journal="run-one", via="celery", chunk_size=7, progress=seen.append
    )
    valid = [r for r in rows[:-2] if "@" in r[0]]
    assert (report.total, report.sent, report.duplicates) == (48, 45, 1)
    assert report.already_sent == 0 and report.complete
    assert sorted((f.row, f.error_class) for f in report.failures) == [
        (11, "InvalidEmailAddressError"),
        (48, "MissingPersonalisationError"),
    ]
    assert report.concurrency == 7  # chunks of 7 for 46 emails
    assert seen and seen[-1].done == 48
    assert_exactly_once(sandbox, valid)

    # The journal holds hashes, references, states and ids: no address, no value.
    kept = repr(run_keys(clean_redis, "run-one"))
    for address, values in rows:
        assert address not in kept
        for value in values.values():
            assert value not in kept

    again = mailer.send_bulk("reset_password", rows, journal="run-one", via="celery")
    assert (again.sent, again.already_sent) == (0, 45)
    assert [f.error_class for f in again.failures] == [
        "InvalidEmailAddressError",
        "MissingPersonalisationError",
    ]
    assert_exactly_once(sandbox, valid)

    with pytest.raises(JournalError, match="other recipients"):
        mailer.send_bulk("reset_password", rows[:5], journal="run-one", via="celery")


def test_bad_options_are_refused_before_anything_is_sent(web: Flask, sandbox: Sandbox) -> None:
    mailer = mailer_of(web)
    rows = people(2, "refused")
    with pytest.raises(InvalidOptionError, match="via"):
        mailer.send_bulk("reset_password", rows, journal="x", via="carrier-pigeon")
    with pytest.raises(InvalidOptionError, match="concurrency"):
        mailer.send_bulk("reset_password", rows, journal="x", via="celery", concurrency=4)
    with pytest.raises(InvalidOptionError, match="journal"):
        mailer.send_bulk("reset_password", rows, journal="a {b}", via="celery")
    with pytest.raises(InvalidOptionError, match="chunk_size"):
        mailer.send_bulk("reset_password", rows, journal="x", via="celery", chunk_size=0)
    assert sandbox.state.outbox() == []


def test_a_stop_stops_every_worker_and_the_same_run_resumes(
    web: Flask, sandbox: Sandbox, clean_redis: str, workers: Callable[..., Worker]
) -> None:
    rows = people(24, "stopped")
    workers(worker_environment(sandbox, clean_redis), concurrency=2).wait_ready()
    mailer = mailer_of(web)
    stop = threading.Event()

    def progress(report: BulkProgress) -> None:
        if report.sent >= 3:
            stop.set()

    options: dict[str, Any] = {"journal": "stopped-run", "via": "celery", "rate": 60, "burst": 1}
    with pytest.raises(BulkInterruptedError) as raised:
        mailer.send_bulk(
            "reset_password", rows, chunk_size=5, progress=progress, stop=stop, **options
        )
    report = raised.value.report
    assert report is not None and report.interrupted and not report.complete
    assert report.unsent + report.in_doubt > 0
    stopped_at = len(sandbox.state.outbox())
    assert stopped_at < len(rows)
    time.sleep(3)  # the worker would send about 6 more in this time if it had not stopped
    assert len(sandbox.state.outbox()) <= stopped_at + 2  # at most the sends under way

    finished = mailer.send_bulk("reset_password", rows, **options)
    assert finished.complete and finished.sent + finished.already_sent == len(rows)
    assert_exactly_once(sandbox, rows)


# -- the command, killed -------------------------------------------------------------------------


def write_csv(path: Path, rows: Rows) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "url"])
        writer.writerows([address, values["url"]] for address, values in rows)
    return path


class Command:
    """``flask dmmail bulk-send --via celery`` as a process of its own."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "tests.celery_worker:flask_app",
                "dmmail",
                "bulk-send",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        out, err = self.process.communicate(timeout=timeout)
        record_output("bulk-send --via celery", out + err)
        return self.process.returncode, out + err

    def kill(self) -> None:
        self.process.kill()
        self.finish()


@pytest.fixture
def commands() -> Iterator[list[Command]]:
    """The commands a test starts; any still running at its end is killed."""
    started: list[Command] = []
    yield started
    for command in started:
        if command.process.poll() is None:
            command.kill()


@pytest.mark.slow
def test_workers_and_the_command_killed_three_times_then_resumed_send_each_email_once(
    sandbox: Sandbox,
    clean_redis: str,
    workers: Callable[..., Worker],
    commands: list[Command],
    tmp_path: Path,
) -> None:
    rows = people(120, "killed")
    source = write_csv(tmp_path / "people.csv", rows)
    env = {
        **worker_environment(sandbox, clean_redis, DM_NOTIFY_TIMEOUT="1"),
        "TEST_VISIBILITY_TIMEOUT": "3",
    }
    args = (
        "reset_password",
        "--csv",
        str(source),
        "--journal",
        "killed-run",
        "--via",
        "celery",
        "--chunk-size",
        "10",
        "--rate",
        "60",  # each worker process's pace: the run lasts long enough to be killed
        "--burst",
        "1",
    )
    sandbox.state.set_faults(latency=0.4)  # posts take a while: a kill lands mid-send
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    running = [workers(env, concurrency=2).wait_ready() for _ in range(2)]
    client = redis.Redis.from_url(clean_redis, decode_responses=True)
    states_key = "dmmail:bulk:{killed-run}:states"
    in_doubt_after_kills = 0
    for kill_workers in (True, False, True):
        stored = len(sandbox.state.outbox())
        command = Command(env, *args)
        commands.append(command)
        wanted = stored + rng.randint(5, 20)

        def progressed(wanted: int = wanted) -> bool:
            in_flight = Counter(client.hvals(states_key))["in-flight"]
            return len(sandbox.state.outbox()) >= wanted and in_flight > 0

        wait_for(progressed, "progress, with sends under way")
        if kill_workers:
            for worker in running:
                worker.kill()  # and every child it forked, mid-send
            in_doubt_after_kills += Counter(client.hvals(states_key))["in-flight"]
        command.kill()
        assert command.process.returncode == -signal.SIGKILL
        if kill_workers:
            running = [workers(env, concurrency=2).wait_ready() for _ in range(2)]
    assert len(sandbox.state.outbox()) < len(rows), f"seed {seed}"
    assert in_doubt_after_kills > 0, f"seed {seed}: no kill left an email in doubt"

    sandbox.state.clear_faults()
    final = Command(env, *args)
    commands.append(final)
    code, output = final.finish()
    assert code == 0, (seed, output)
    assert "sent:" in output and "failed:                   0" in output
    assert_exactly_once(sandbox, rows)
    states = Counter(client.hvals(states_key))
    assert states == {"sent": 120}, f"seed {seed}"
    assert "person" not in output
