"""Several sender processes against one rate-limited Notify: one budget shared through Redis
(``DM_MAIL_REDIS_URL``) next to today's bucket per process.

Run: ``python benchmarks/scale_out.py [--processes 4] [--emails 4000] [--limit 6000]``.

The sandbox runs in its own process (``python -m flask_dmmail.sandbox``) with a limit of
100 requests a second (``--limit 6000``; its bucket is the one Notify gives that rate, 1,000
tokens) and 100 ms added to every /v2 request. Each of ``--processes`` processes runs
``Mailer.send_bulk`` over its own share of the ``--emails`` recipients, with its own journal,
at its default rate (``DM_NOTIFY_BULK_RATE``: the whole limit with the shared budget, nine
tenths of it without).

Two runs, each checked in the sandbox's outbox (one notification per recipient, no duplicate
reference, none missing):

- **shared**: every process takes its tokens from one Redis bucket (a real ``redis-server``).
  The bucket starts full, as for a service that has been idle (Redis keeps it; only a bucket
  Redis never had starts empty);
- **per process**: no Redis; each process paces itself as if it were alone.

Both runs start with Notify's bucket full, so the best any run can do is one burst of its
1,000 tokens, then 100 a second ("best possible"). The shared run's bulk sends leave 280 of
that burst: 180 kept for transactional sends (``DM_NOTIFY_BULK_SHARE`` 0.8 of a shared
bucket of 900) and 100 as a second of margin for network jitter.

The aggregate rate is the sandbox's: emails stored over the span from the first to the last
(process start-up is not sending); "steady" is the same over the second half of the emails,
after the opening burst. The wall-clock rate, from the first process started to the last
finished, is printed too. 429s are those the runs met (``BulkReport.rate_limited``). Goals
for the shared run: rate / limit at least 0.95, no 429, no duplicate, no loss.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from redis_process import RedisProcess
from sandbox_process import SandboxProcess

from flask_dmmail import DMMail
from flask_dmmail.budget import KEY_PREFIX, BudgetShape, service_id_of
from flask_dmmail.ratelimit import notify_bucket_size

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


# -- one sender process --------------------------------------------------------------------------


def worker(args: argparse.Namespace) -> int:
    """``--worker``: send this process's share in one bulk run; print its report as JSON."""
    logging.disable(logging.ERROR)  # the per-process run logs every 429: counted below
    app = Flask(f"scale_out_{args.first}")
    config: dict[str, Any] = {
        "SECRET_KEY": "benchmark",
        "DM_NOTIFY_KEY": args.key,
        "DM_NOTIFY_BASE_URL": args.url,
        "DM_NOTIFY_TEMPLATES": {"coming": TEMPLATE_ID},
        "DM_MAIL_SANDBOX": False,
        "DM_ENVIRONMENT": "production",
        "DM_NOTIFY_RATE_LIMIT": args.limit,
    }
    if args.redis_url:
        config["DM_MAIL_REDIS_URL"] = args.redis_url
    app.config.update(config)
    mailer = DMMail().init_app(app)
    recipients = [
        (f"supplier{i}@example.gov.uk", {"name": f"Supplier {i}", "framework": "G-Cloud 15"})
        for i in range(args.first, args.first + args.count)
    ]
    try:
        report = mailer.send_bulk("coming", recipients, journal=args.journal)
    finally:
        mailer.close()
    print(json.dumps({"sent": report.sent, "failed": report.failed, "429s": report.rate_limited}))
    return 0


# -- the runs ----------------------------------------------------------------------------------


def run(
    sandbox: SandboxProcess, redis_url: str, args: argparse.Namespace, tmp: Path, name: str
) -> dict[str, Any]:
    """One run of ``args.processes`` sender processes; what they and the sandbox saw."""
    sandbox.control("POST", "reset")
    sandbox.control("POST", "faults", {"latency": args.latency})
    if redis_url:
        fill_bucket(redis_url, sandbox, args.limit)
    share = args.emails // args.processes
    began = time.perf_counter()
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                f"--url={sandbox.url}",
                f"--key={sandbox.key}",
                f"--redis-url={redis_url}",
                f"--limit={args.limit}",
                f"--first={i * share}",
                f"--count={share}",
                f"--journal={tmp / f'{name}-{i}.journal'}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(args.processes)
    ]
    reports = []
    for process in processes:
        out, _ = process.communicate()
        reports.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - began
    stored, duplicates, missing = sandbox.check_outbox(share * args.processes)
    times = sorted(
        datetime.fromisoformat(n["created_at"]).timestamp()
        for n in sandbox.control("GET", "outbox")["notifications"]
    )
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    half = len(times) // 2
    return {
        "steady": (len(times) - half - 1) / (times[-1] - times[half]),
        "sent": sum(r["sent"] for r in reports),
        "failed": sum(r["failed"] for r in reports),
        "429s": sum(r["429s"] for r in reports),
        "rate": (len(times) - 1) / span,
        "wall_rate": stored / wall,
        "stored": stored,
        "duplicates": duplicates,
        "missing": missing,
        "span": span,
    }


def fill_bucket(redis_url: str, sandbox: SandboxProcess, limit: float) -> None:
    """The shared bucket of the sandbox's service and live key type, full."""
    service_id = service_id_of(sandbox.key)
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushall()
        seconds, micros = client.time()
        client.hset(
            f"{KEY_PREFIX}:{service_id}:live",
            mapping={
                "tokens": BudgetShape.for_rate(limit, 0.8).capacity,
                "ts": seconds + micros / 1_000_000,
            },
        )
    finally:
        client.close()


def _line(name: str, result: dict[str, Any], per_second: float, best: float) -> str:
    return (
        f"{name:>11}: {result['sent']} sent in {result['span']:6.2f} s = "
        f"{result['rate']:6.1f}/s = {result['rate'] / per_second:.3f} of the limit "
        f"(steady {result['steady'] / per_second:.3f}, wall clock "
        f"{result['wall_rate'] / per_second:.3f}), {result['rate'] / best:.3f} of the best "
        f"possible; 429s {result['429s']}; "
        f"stored {result['stored']}, duplicates {result['duplicates']}, "
        f"missing {result['missing']}, failed {result['failed']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4, help="sender processes (4)")
    parser.add_argument("--emails", type=int, default=4000, help="emails in all (4000)")
    parser.add_argument("--limit", type=int, default=6000, help="server limit per minute (6000)")
    parser.add_argument("--latency", type=float, default=0.1, help="added latency, s (0.1)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--journal", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    per_second = args.limit / 60

    options = ["--rate-limit", str(args.limit), "--daily-limit", "100000000"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        SandboxProcess(SEED, *options) as sandbox,
        RedisProcess() as redis_server,
    ):
        shared = run(sandbox, redis_server.url, args, Path(tmp), "shared")
        alone = run(sandbox, "", args, Path(tmp), "alone")

    emails = args.emails // args.processes * args.processes
    burst = notify_bucket_size(args.limit)
    best = emails / (max(1, emails - burst) / per_second)
    print(
        f"server: {args.limit}/min ({per_second:.0f}/s), a bucket of {burst}, "
        f"+{args.latency * 1000:.0f} ms per request; {args.processes} processes, {emails} "
        f"emails; best possible {best:.1f}/s (one burst of {burst}, then {per_second:.0f}/s)"
    )
    print(_line("shared", shared, per_second, best))
    print(_line("per process", alone, per_second, best))
    ok = all(r["duplicates"] == r["missing"] == 0 for r in (shared, alone))
    if not ok:
        print("DUPLICATE OR LOST EMAILS: see the stored/duplicates/missing figures above")
    print(
        f"shared budget: rate / limit = {shared['rate'] / per_second:.3f} (steady "
        f"{shared['steady'] / per_second:.3f}), 429s {shared['429s']}; per process: "
        f"{alone['rate'] / per_second:.3f} (steady {alone['steady'] / per_second:.3f}), "
        f"429s {alone['429s']}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
