"""Proof tests of the shared budget with real processes (issue 9): several sender processes
(``tests/budget_worker.py``), one real ``redis-server``, and the sandbox as Notify, its limit
set low (600 a minute, with the bucket Notify gives that rate: 201 tokens, 10 a second).

- (a) 4 processes share one budget: the sandbox refuses nothing (no 429) and what it took
  fits its bucket in every window;
- (c) Redis restarted mid-run: typed errors or a pause, never a duplicate or a loss;
- (d) during a bulk run at the limit, 100 transactional sends see no 429.

Each test starts with the shared bucket full, as for a service that has been idle: it is
the case where a burst could overrun Notify's bucket. No assertion is on time: the
sandbox's clock only says what it accepted when.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from flask_dmmail.budget import KEY_PREFIX, BudgetShape
from flask_dmmail.sandbox import Sandbox
from tests.redis_support import RestartableRedis
from tests.secrets_scan import record_output, register_secret

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
#: The sandbox's limit in these tests, a minute, and its bucket (Notify's for the rate).
RATE = 600
BURST = 201


def address(n: int) -> str:
    return f"user{n}@example.gov.uk"


@pytest.fixture
def limited(sandbox: Sandbox) -> Sandbox:
    sandbox.state.set_limits(rate_limit=RATE)
    assert sandbox.state.notify.limits.bucket_size == BURST
    return sandbox


def fill_bucket(url: str, sandbox: Sandbox) -> None:
    """The shared bucket of the sandbox's service and live key type, full."""
    client = redis.Redis.from_url(url)
    try:
        seconds, micros = client.time()
        client.hset(
            f"{KEY_PREFIX}:{sandbox.state.service_id}:live",
            mapping={
                "tokens": BudgetShape.for_rate(RATE, 0.8).capacity,
                "ts": seconds + micros / 1_000_000,
            },
        )
    finally:
        client.close()


class Worker:
    """One ``python -m tests.budget_worker`` process."""

    def __init__(
        self,
        sandbox: Sandbox,
        redis_url: str,
        mode: str,
        first: int,
        count: int,
        *,
        journal: Path | None = None,
    ) -> None:
        register_secret(*(address(n) for n in range(first, first + count)), kind="address")
        self.numbers = range(first, first + count)
        args = [
            sys.executable,
            "-m",
            "tests.budget_worker",
            f"--mode={mode}",
            f"--notify-url={sandbox.url}",
            f"--key={sandbox.keys.test}",
            f"--redis-url={redis_url}",
            f"--rate-limit={RATE}",
            f"--first={first}",
            f"--count={count}",
        ]
        if journal is not None:
            args.append(f"--journal={journal}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DM_", "FLASK_"))}
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def result(self) -> dict[str, Any]:
        """Its summary, once it has finished (killed after 5 minutes)."""
        try:
            out, err = self.process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        record_output("budget_worker stdout", out)
        record_output("budget_worker stderr", err)
        assert self.process.returncode == 0, err[-2000:]
        summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return summary


def wait_for_outbox(sandbox: Sandbox, count: int, workers: Iterable[Worker]) -> None:
    """Until the sandbox holds ``count`` emails (while any worker runs)."""
    pause = threading.Event()
    for _ in range(6000):
        if len(sandbox.state.outbox()) >= count:
            return
        assert any(w.running for w in workers), "the workers ended first"
        pause.wait(0.05)
    pytest.fail(f"the sandbox never held {count} emails")


def assert_within_bucket(times: list[datetime], per_second: float, burst: int) -> None:
    """No window of the sandbox's accepted sends holds more than its bucket allows:
    ``burst`` plus the refill over the window (plus 2 for the time between the sandbox
    taking its token and storing the email)."""
    stamps = sorted(t.timestamp() for t in times)
    for i, start in enumerate(stamps):
        for j in range(i, len(stamps)):
            allowed = burst + per_second * (stamps[j] - start) + 2
            assert j - i + 1 <= allowed, (i, j, stamps[j] - start)


def assert_each_once(sandbox: Sandbox, numbers: Iterable[int]) -> None:
    """Every recipient in ``numbers`` got exactly one email, and nobody else got one."""
    got = Counter(n.email_address for n in sandbox.state.outbox())
    wanted = Counter(address(n) for n in numbers)
    assert got == wanted, (sum(got.values()), sum(wanted.values()))


def test_four_processes_share_one_budget_and_meet_no_429(
    limited: Sandbox, fresh_redis_url: str, tmp_path: Path
) -> None:
    fill_bucket(fresh_redis_url, limited)
    workers = [
        Worker(limited, fresh_redis_url, "send", 0, 75),
        Worker(limited, fresh_redis_url, "send", 75, 75),
        Worker(limited, fresh_redis_url, "bulk", 150, 75, journal=tmp_path / "a.journal"),
        Worker(limited, fresh_redis_url, "bulk", 225, 75, journal=tmp_path / "b.journal"),
    ]
    results = [w.result() for w in workers]
    assert [r["sent"] for r in results] == [75, 75, 75, 75]
    assert all(r["errors"] == {} for r in results), results
    assert limited.state.notify.limits.rate_limited == {}
    assert_each_once(limited, range(300))
    assert_within_bucket([n.created_at for n in limited.state.outbox()], RATE / 60, BURST)
    # 300 emails against a bucket of 201: the processes had to wait for tokens.
    assert max(r["max_wait"]["transactional"] + r["max_wait"]["bulk"] for r in results) > 0


def test_transactional_sends_meet_no_429_during_a_bulk_run_at_the_limit(
    limited: Sandbox, fresh_redis_url: str, tmp_path: Path
) -> None:
    fill_bucket(fresh_redis_url, limited)
    bulk = Worker(limited, fresh_redis_url, "bulk", 0, 300, journal=tmp_path / "bulk.journal")
    # Past the burst (153 tokens above the reserve), the run takes every token that comes.
    wait_for_outbox(limited, 160, [bulk])
    sends = [
        Worker(limited, fresh_redis_url, "send", 1000, 50),
        Worker(limited, fresh_redis_url, "send", 1050, 50),
    ]
    results = [w.result() for w in sends]
    assert bulk.running, "the bulk run ended before the transactional sends did"
    bulk_result = bulk.result()
    assert [r["sent"] for r in results] == [50, 50] and bulk_result["sent"] == 300
    assert all(r["errors"] == {} for r in [*results, bulk_result]), [*results, bulk_result]
    assert limited.state.notify.limits.rate_limited == {}
    assert_each_once(limited, [*range(300), *range(1000, 1100)])


def test_a_redis_restart_mid_run_means_typed_errors_or_a_pause_never_a_duplicate_or_a_loss(
    limited: Sandbox, restartable_redis: RestartableRedis, tmp_path: Path
) -> None:
    register_secret(restartable_redis.password, kind="Redis password")
    url = restartable_redis.url
    fill_bucket(url, limited)
    workers = [
        Worker(limited, url, "send", 0, 150),
        Worker(limited, url, "send", 150, 150),
        Worker(limited, url, "bulk", 300, 50, journal=tmp_path / "bulk.journal"),
    ]
    # In the paced part of the run, with about 80 transactional sends still to go (they come
    # first) and the whole bulk run.
    wait_for_outbox(limited, 220, workers)
    restartable_redis.stop()
    threading.Event().wait(1.0)
    restartable_redis.start()
    results = [w.result() for w in workers]
    assert [r["sent"] for r in results] == [150, 150, 50]
    typed = {"RedisUnavailableError", "BulkAbortedError(RedisUnavailableError)"}
    assert all(set(r["errors"]) <= typed for r in results), results
    # The outage was met: a typed error, or a pause the process logged. (A process waiting
    # for a token, as a bulk run behind the transactional sends, may sleep through it.)
    met = [sum(r["errors"].values()) + r["redis_down_warnings"] for r in results]
    assert any(met), results
    assert limited.state.notify.limits.rate_limited == {}
    assert_each_once(limited, range(350))
