"""Bulk sending against a rate-limited Notify: how close ``Mailer.send_bulk`` gets to the
key's limit, next to a sequential loop of ``Mailer.send`` as today's scripts do.

Run: ``python benchmarks/bulk_throughput.py [--recipients 3000] [--sequential 300]``.

The sandbox runs in another process (this script with ``--serve``) with a scaled-down
limit: 100 requests a second with a bucket of 100 (``--limit 6000 --burst 100``), and
100 ms added to every /v2 request (``/_sandbox/faults`` ``latency``), roughly Notify's
latency seen from a Digital Marketplace box. (Left to itself the sandbox sizes its bucket as
Notify does, min(ceil(rate/3)+1, 1000): 1000 tokens at 6000/min; ``burst`` overrides that.)

Each run is checked in the sandbox's outbox: one notification per recipient, no
duplicate reference, none missing. The achieved rate is recipients / wall time of the
whole call (reading, checks, journal included). The sequential loop sends ``--sequential``
emails one after another (fewer than the bulk run: at 100 ms each, 3,000 would take five
minutes; its rate does not depend on the count). The last line is the bulk run's achieved
rate / limit; the goal is at least 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from flask import Flask

from flask_dmmail import DMMail, Mailer

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


# -- the sandbox process ---------------------------------------------------------------------


def _serve(limit: int, burst: int, seed_path: str) -> None:
    """Run the sandbox with a ``burst``-token bucket until SIGTERM; print URL and key."""
    from flask_dmmail.sandbox import Sandbox

    sandbox = Sandbox.start(seed=seed_path, rate_limit=limit, burst=burst, daily_limit=100_000_000)
    print(f"base url: {sandbox.url}")
    print(f"test key: {sandbox.keys.test}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        sandbox.stop()


class _SandboxProcess:
    """This script with ``--serve`` in a subprocess; its URL and test key."""

    def __init__(self, limit: int, burst: int, seed_path: Path) -> None:
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(limit), str(burst), str(seed_path)],
            stdout=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
            },
        )
        assert self.process.stdout is not None
        lines = dict(self.process.stdout.readline().strip().partition(": ")[::2] for _ in range(2))
        if "base url" not in lines or "test key" not in lines:
            self.stop()
            raise SystemExit("the sandbox did not start")
        self.url = lines["base url"]
        self.key = lines["test key"]

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.request(method, f"{self.url}/_sandbox/{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def fresh(self, latency: float) -> None:
        """Empty outbox, full bucket, ``latency`` added to every /v2 request."""
        self.control("POST", "reset")
        self.control("POST", "faults", {"latency": latency})

    def check_outbox(self, expected: int) -> tuple[int, int, int]:
        """(stored, duplicate references, missing) for ``expected`` distinct emails."""
        notifications = self.control("GET", "outbox")["notifications"]
        references = Counter(n["reference"] for n in notifications)
        duplicates = sum(count - 1 for count in references.values())
        return len(notifications), duplicates, expected - len(references)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


# -- the runs ----------------------------------------------------------------------------------


def _recipients(count: int, run: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"supplier{i}@example.gov.uk", {"name": f"Supplier {i}", "framework": f"G-Cloud {run}"})
        for i in range(count)
    ]


def _line(name: str, sent: int, elapsed: float, limit: float, outbox: tuple[int, int, int]) -> str:
    stored, duplicates, missing = outbox
    return (
        f"{name:>10}: {sent} emails in {elapsed:6.2f} s = {sent / elapsed:6.1f}/s, "
        f"rate / limit = {sent / elapsed / limit:.3f}; stored {stored}, "
        f"duplicates {duplicates}, missing {missing}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=3000, help="bulk run size (3000)")
    parser.add_argument("--sequential", type=int, default=300, help="sequential run size (300)")
    parser.add_argument("--limit", type=int, default=6000, help="server limit per minute (6000)")
    parser.add_argument("--burst", type=int, default=100, help="server bucket size (100)")
    parser.add_argument("--latency", type=float, default=0.1, help="added latency, s (0.1)")
    args = parser.parse_args(argv)
    per_second = args.limit / 60

    with tempfile.TemporaryDirectory() as tmp:
        seed_path = Path(tmp) / "seed.json"
        seed_path.write_text(json.dumps(SEED), encoding="utf-8")
        sandbox = _SandboxProcess(args.limit, args.burst, seed_path)
        try:
            app = Flask("bulk_throughput")
            app.config.update(
                SECRET_KEY="benchmark",
                DM_NOTIFY_KEY=sandbox.key,
                DM_NOTIFY_BASE_URL=sandbox.url,
                DM_NOTIFY_TEMPLATES={"coming": TEMPLATE_ID},
                DM_MAIL_SANDBOX=False,
            )
            DMMail(app)
            mailer: Mailer = app.extensions["dmmail"]

            sandbox.fresh(args.latency)
            recipients = _recipients(args.recipients, "bulk")
            began = time.perf_counter()
            report = mailer.send_bulk(
                "coming",
                recipients,
                journal=Path(tmp) / "bulk.journal",
                rate=args.limit,
                burst=args.burst,
            )
            bulk_elapsed = time.perf_counter() - began
            bulk_outbox = sandbox.check_outbox(args.recipients)

            sandbox.fresh(args.latency)
            began = time.perf_counter()
            for address, values in _recipients(args.sequential, "loop"):
                mailer.send(address, "coming", values)
            loop_elapsed = time.perf_counter() - began
            loop_outbox = sandbox.check_outbox(args.sequential)
            mailer.close()
        finally:
            sandbox.stop()

    ideal = args.recipients / (max(0, args.recipients - args.burst) / per_second)
    print(
        f"server: {args.limit}/min ({per_second:.0f}/s), bucket {args.burst}, "
        f"+{args.latency * 1000:.0f} ms per request"
    )
    print(
        f"bulk: {report.sent} sent, {report.failed} failed, {report.rate_limited} 429s, "
        f"{report.concurrency} threads; best possible {ideal:.1f}/s "
        f"(= {ideal / per_second:.3f} of the limit, the first {args.burst} in one burst)"
    )
    print(_line("sequential", args.sequential, loop_elapsed, per_second, loop_outbox))
    print(_line("bulk", report.sent, bulk_elapsed, per_second, bulk_outbox))
    print(f"bulk / sequential = {loop_elapsed / args.sequential * report.sent / bulk_elapsed:.1f}x")
    ok = bulk_outbox == (args.recipients, 0, 0) and loop_outbox == (args.sequential, 0, 0)
    if not ok:
        print("DUPLICATE OR LOST EMAILS: see the stored/duplicates/missing figures above")
    print(f"achieved rate / limit = {report.sent / bulk_elapsed / per_second:.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        _serve(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(main())
