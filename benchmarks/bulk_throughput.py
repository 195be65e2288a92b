"""Bulk sending against a rate-limited Notify: how close ``Mailer.send_bulk`` gets to the
key's limit, next to a sequential loop of ``Mailer.send`` as today's scripts do.

Run: ``python benchmarks/bulk_throughput.py [--recipients 3000] [--sequential 300]``.

The sandbox runs in another process (``python -m flask_dmmail.sandbox``) with a scaled-down
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
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sandbox_process import SandboxProcess

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


# -- the runs ----------------------------------------------------------------------------------


def _fresh(sandbox: SandboxProcess, latency: float) -> None:
    """Empty outbox, full bucket, ``latency`` added to every /v2 request."""
    sandbox.control("POST", "reset")
    sandbox.control("POST", "faults", {"latency": latency})


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

    options = ["--rate-limit", str(args.limit), "--burst", str(args.burst)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        SandboxProcess(SEED, *options, "--daily-limit", "100000000") as sandbox,
    ):
        mailer = sandbox.mailer("bulk_throughput", {"coming": TEMPLATE_ID})
        try:
            _fresh(sandbox, args.latency)
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

            _fresh(sandbox, args.latency)
            began = time.perf_counter()
            for address, values in _recipients(args.sequential, "loop"):
                mailer.send(address, "coming", values)
            loop_elapsed = time.perf_counter() - began
            loop_outbox = sandbox.check_outbox(args.sequential)
        finally:
            mailer.close()

    # Notify lets one token fewer than the bucket holds through at once (it refuses below one).
    ideal = args.recipients / (max(0, args.recipients - (args.burst - 1)) / per_second)
    print(
        f"server: {args.limit}/min ({per_second:.0f}/s), bucket {args.burst}, "
        f"+{args.latency * 1000:.0f} ms per request"
    )
    print(
        f"bulk: {report.sent} sent, {report.failed} failed, {report.rate_limited} 429s, "
        f"{report.concurrency} threads; best possible {ideal:.1f}/s "
        f"(= {ideal / per_second:.3f} of the limit, the first {args.burst - 1} in one burst)"
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
    sys.exit(main())
