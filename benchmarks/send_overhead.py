"""What ``Mailer.send`` costs on top of the bare Notify client, per email.

Run: ``python benchmarks/send_overhead.py [--sends 2000] [--block 100] [--log-info]``.

The sandbox runs in another process (``python -m flask_dmmail.sandbox --port 0``), so
its work does not share this process's interpreter with the clients. The same number of
sends goes through ``Mailer.send`` (checks, derived reference, redirect, retries wrapper,
signal, log line) and through a bare ``NotificationsAPIClient.send_email_notification``
with the same template, personalisation and a reference of the same length. The two
alternate in blocks (ABBA order, so neither always runs first) after a warm-up, one
thread each, over keep-alive connections. ``--log-info`` turns the ``flask_dmmail`` INFO
line on (into a handler that formats and drops it), as an app logging at INFO would.

The last line is ours / bare, the time per email relative to the bare client; the goal is
at most 1.15.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable

from notifications_python_client.notifications import NotificationsAPIClient
from sandbox_process import SandboxProcess

from flask_dmmail import Mailer

TEMPLATE_ID = str(uuid.UUID("8d0e2b9a-6c1f-4e3d-9a7b-5c4d3e2f1a0b"))
SEED = {
    "templates": [
        {
            "id": TEMPLATE_ID,
            "name": "Benchmark",
            "type": "email",
            "subject": "Hello ((name))",
            "body": "Dear ((name)),\n\nYour application ((application)) was received.",
        }
    ]
}
ADDRESS = "someone@example.gov.uk"


def _ours(mailer: Mailer) -> Callable[[int], None]:
    def send(i: int) -> None:
        mailer.send(ADDRESS, "benchmark", {"name": "Sam", "application": f"app-{i}"})

    return send


def _bare(client: NotificationsAPIClient) -> Callable[[int], None]:
    def send(i: int) -> None:
        # a reference as long as a derived one (50 characters)
        client.send_email_notification(
            ADDRESS,
            TEMPLATE_ID,
            personalisation={"name": "Sam", "application": f"app-{i}"},
            reference=f"bare-{i:045d}",
        )

    return send


def _block(send: Callable[[int], None], start: int, count: int) -> float:
    began = time.perf_counter()
    for i in range(start, start + count):
        send(i)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=2000, help="sends per client (2000)")
    parser.add_argument("--block", type=int, default=100, help="sends per block (100)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up sends each (100)")
    parser.add_argument(
        "--log-info", action="store_true", help="format the INFO line of every send"
    )
    args = parser.parse_args(argv)

    if args.log_info:
        handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger("flask_dmmail").addHandler(handler)
        logging.getLogger("flask_dmmail").setLevel(logging.INFO)

    options = ["--rate-limit", "100000000", "--daily-limit", "100000000"]
    with SandboxProcess(SEED, *options) as sandbox:
        mailer = sandbox.mailer("send_overhead", {"benchmark": TEMPLATE_ID})
        try:
            ours = _ours(mailer)
            bare = _bare(NotificationsAPIClient(sandbox.key, base_url=sandbox.url))

            _block(ours, 0, args.warmup)
            _block(bare, 0, args.warmup)
            totals = {"ours": 0.0, "bare": 0.0}
            blocks = max(1, args.sends // args.block)
            index = args.warmup
            for b in range(blocks):
                order = [("ours", ours), ("bare", bare)]
                if b % 2:
                    order.reverse()  # ABBA: neither side always goes first
                for name, send in order:
                    totals[name] += _block(send, index, args.block)
                index += args.block
            sends = blocks * args.block
        finally:
            mailer.close()

    for name in ("bare", "ours"):
        per_send = totals[name] / sends * 1e6
        print(
            f"{name:>4}: {sends} sends in {totals[name]:.2f} s, "
            f"{per_send:.0f} µs per send, {sends / totals[name]:.0f} sends/s"
        )
    extra = (totals["ours"] - totals["bare"]) / sends * 1e6
    print(f"extra per send in Mailer.send: {extra:.0f} µs")
    print(f"overhead = ours / bare = {totals['ours'] / totals['bare']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
