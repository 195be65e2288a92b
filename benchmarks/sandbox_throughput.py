"""Sends per second through the Notify sandbox: 4 client threads, one official client each.

Run: ``python benchmarks/sandbox_throughput.py [--seconds 5] [--threads 4]``. The client
(JWT signing, requests) runs in this process too, so the figure includes it. The last
line printed is the rate.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.sandbox import Sandbox

TEMPLATE_ID = str(uuid.UUID("3b1f2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"))
SEED = {
    "templates": [
        {
            "id": TEMPLATE_ID,
            "name": "Benchmark",
            "type": "email",
            "subject": "Hello ((name))",
            "body": "Dear ((name)),\n\nYour reference is ((reference)).\n\n((extra??More text.))",
        }
    ]
}


def _worker(
    url: str, key: str, stop_at: float, counts: list[int], index: int, errors: list[str]
) -> None:
    client = NotificationsAPIClient(key, base_url=url)
    sent = 0
    while time.perf_counter() < stop_at:
        try:
            client.send_email_notification(
                "someone@example.gov.uk",
                TEMPLATE_ID,
                personalisation={"name": "Sam", "reference": f"ref-{sent}", "extra": "yes"},
                reference=f"bench-{index}-{sent}",
            )
        except Exception as error:  # counted, not hidden
            errors.append(type(error).__name__)
            break
        sent += 1
    counts[index] = sent


def main() -> None:
    """Run the benchmark and print sends per second last."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with Sandbox.start(seed=SEED, rate_limit=1_000_000, daily_limit=10_000_000) as sandbox:
        # warm up: compile, first connections
        NotificationsAPIClient(sandbox.keys.live, base_url=sandbox.url).send_email_notification(
            "someone@example.gov.uk",
            TEMPLATE_ID,
            personalisation={"name": "Sam", "reference": "warm-up", "extra": "no"},
        )
        counts = [0] * args.threads
        errors: list[str] = []
        start = time.perf_counter()
        stop_at = start + args.seconds
        threads = [
            threading.Thread(
                target=_worker,
                args=(sandbox.url, sandbox.keys.live, stop_at, counts, i, errors),
            )
            for i in range(args.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        total = sum(counts)
        stored = len(sandbox.state.outbox())
    print(f"threads: {args.threads}, seconds: {elapsed:.2f}, sent: {total}, stored: {stored}")
    if errors:
        print(f"errors: {', '.join(errors)}")
    print(f"sends per second: {total / elapsed:.1f}")


if __name__ == "__main__":
    main()
