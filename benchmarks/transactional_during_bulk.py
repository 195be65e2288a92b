"""How long a ``send`` from the app waits for a token while a bulk run holds Notify's limit,
with the shared budget's reserve for transactional mail (``DM_NOTIFY_BULK_SHARE`` 0.8) and
without one (1.0).

Run: ``python benchmarks/transactional_during_bulk.py [--sends 200] [--every 0.2]``.

The sandbox runs in its own process with Notify's own limit (3,000 a minute: a bucket of
1,000 tokens refilled at 50 a second, one every 20 ms) and 100 ms added to every /v2
request; a real ``redis-server`` holds the shared budget, full at the start (an idle
service). A bulk run in another process (``Mailer.send_bulk``, at the whole limit) sends
until it is stopped. Once it holds the limit (the shared bucket is down to what bulk work
may not take), this process sends ``--sends`` emails with ``Mailer.send``, one every
``--every`` seconds, and records each one's wait for its token
(``SharedBudget.waits``) and its whole time. Then the bulk run is stopped.

Printed for each run: p50, p95 and the largest wait, the sends' p50 and p95, and the 429s
met by the sends and by the bulk run. Goal with the reserve: p95 wait at most two refill
intervals (40 ms).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from redis_process import RedisProcess
from sandbox_process import SandboxProcess

from flask_dmmail import DMMail, Mailer
from flask_dmmail.budget import BULK, KEY_PREFIX, TRANSACTIONAL, BudgetShape, service_id_of
from flask_dmmail.errors import BulkInterruptedError

TEMPLATE_ID = str(uuid.UUID("2f7c0d1e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"))
SEED = {
    "templates": [
        {
            "id": TEMPLATE_ID,
            "name": "New framework coming",
            "type": "email",
            "subject": "((framework)) is coming",
            "body": "Dear ((name)),\n\n((framework)) opens for applications soon.",
        }
    ]
}
LIMIT = 3000


def make_mailer(url: str, key: str, redis_url: str, share: float, name: str) -> Mailer:
    app = Flask(name)
    app.config.update(
        SECRET_KEY="benchmark",
        DM_NOTIFY_KEY=key,
        DM_NOTIFY_BASE_URL=url,
        DM_NOTIFY_TEMPLATES={"coming": TEMPLATE_ID},
        DM_MAIL_SANDBOX=False,
        DM_ENVIRONMENT="production",
        DM_NOTIFY_RATE_LIMIT=LIMIT,
        DM_MAIL_REDIS_URL=redis_url,
        DM_NOTIFY_BULK_SHARE=share,
    )
    return DMMail().init_app(app)


# -- the bulk run, in its own process ------------------------------------------------------------


def worker(args: argparse.Namespace) -> int:
    """``--worker``: a bulk run at the limit until SIGTERM; print its report as JSON."""
    logging.disable(logging.ERROR)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    mailer = make_mailer(args.url, args.key, args.redis_url, args.share, "bulk")
    recipients = [
        (f"supplier{i}@example.gov.uk", {"name": f"Supplier {i}", "framework": "G-Cloud 15"})
        for i in range(args.count)
    ]
    try:
        report = mailer.send_bulk("coming", recipients, journal=args.journal, stop=stop)
    except BulkInterruptedError as error:
        assert error.report is not None
        report = error.report
    finally:
        mailer.close()
    print(json.dumps({"sent": report.sent, "429s": report.rate_limited}))
    return 0


# -- one run -------------------------------------------------------------------------------------


class RateLimited(logging.Handler):
    """Counts the 429s this process's sends met (the library's retry warnings and failures)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "error", None) == "RateLimitError":
            self.count += 1


def fill_bucket(redis_url: str, key: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushall()
        seconds, micros = client.time()
        client.hset(
            f"{KEY_PREFIX}:{service_id_of(key)}:live",
            mapping={
                "tokens": BudgetShape.for_rate(LIMIT, 0.8).capacity,
                "ts": seconds + micros / 1_000_000,
            },
        )
    finally:
        client.close()


def run(
    sandbox: SandboxProcess, redis_url: str, share: float, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    sandbox.control("POST", "reset")
    sandbox.control("POST", "faults", {"latency": args.latency})
    fill_bucket(redis_url, sandbox.key)
    mailer = make_mailer(sandbox.url, sandbox.key, redis_url, share, f"app_{share}")
    budget = mailer.budget
    assert budget is not None
    bulk = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--worker",
            f"--url={sandbox.url}",
            f"--key={sandbox.key}",
            f"--redis-url={redis_url}",
            f"--share={share}",
            f"--count={args.bulk}",
            f"--journal={tmp / f'bulk-{share}.journal'}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    counter = RateLimited()
    logger = logging.getLogger("flask_dmmail")
    logger.addHandler(counter)
    try:
        # The bulk run holds the limit once the bucket is down to what it may not take.
        floor = budget.shape.floor(BULK) + 5
        while budget.tokens() > floor:
            assert bulk.poll() is None, "the bulk run ended early"
            time.sleep(0.1)
        times: list[float] = []
        next_at = time.perf_counter()
        for i in range(args.sends):
            time.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += args.every
            began = time.perf_counter()
            mailer.send(f"buyer{i}@example.gov.uk", "coming", {"name": "B", "framework": "DOS"})
            times.append(time.perf_counter() - began)
        held = bulk.poll() is None
        waits = list(budget.waits[TRANSACTIONAL])
    finally:
        logger.removeHandler(counter)
        bulk.send_signal(signal.SIGTERM)
        out, _ = bulk.communicate()
        mailer.close()
    report = json.loads(out.strip().splitlines()[-1])
    return {
        "waits": waits,
        "times": times,
        "held": held,
        "send_429s": counter.count,
        "bulk_429s": report["429s"],
        "bulk_sent": report["sent"],
    }


def _percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if values else 0.0


def _line(name: str, result: dict[str, Any]) -> str:
    ms = 1000
    waits, times = result["waits"], result["times"]
    return (
        f"{name:>16}: wait p50 {_percentile(waits, 50) * ms:6.1f} ms, p95 "
        f"{_percentile(waits, 95) * ms:6.1f} ms, max {max(waits) * ms:6.1f} ms; send p50 "
        f"{_percentile(times, 50) * ms:6.1f} ms, p95 {_percentile(times, 95) * ms:6.1f} ms; "
        f"429s: sends {result['send_429s']}, bulk {result['bulk_429s']} "
        f"({result['bulk_sent']} bulk emails{'' if result['held'] else ', ENDED EARLY'})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=200, help="transactional sends (200)")
    parser.add_argument("--every", type=float, default=0.2, help="seconds between sends (0.2)")
    parser.add_argument("--bulk", type=int, default=20000, help="bulk run size (20000)")
    parser.add_argument("--latency", type=float, default=0.1, help="added latency, s (0.1)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--share", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--journal", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    options = ["--rate-limit", str(LIMIT), "--daily-limit", "100000000"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        SandboxProcess(SEED, *options) as sandbox,
        RedisProcess() as redis_server,
    ):
        reserve = run(sandbox, redis_server.url, 0.8, args, Path(tmp))
        none = run(sandbox, redis_server.url, 1.0, args, Path(tmp))

    interval = 60 / LIMIT
    print(
        f"server: {LIMIT}/min (a token every {interval * 1000:.0f} ms), a bucket of 1000, "
        f"+{args.latency * 1000:.0f} ms per request; {args.sends} sends, one every "
        f"{args.every:g} s, during a bulk run at the limit"
    )
    print(_line("reserve (0.8)", reserve))
    print(_line("no reserve (1.0)", none))
    p95 = _percentile(reserve["waits"], 95)
    print(
        f"with the reserve: p95 wait = {p95 / interval:.2f} refill intervals (goal at most 2); "
        f"without: {_percentile(none['waits'], 95) / interval:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
