"""Sends per second through the Notify sandbox: 4 client threads, one official client each.

Run: ``python benchmarks/sandbox_throughput.py [--seconds 5] [--threads 4]``. The client
(JWT signing, requests) runs in this process too, so the figure includes it.

The baseline, measured in the same run with the same client and threads, is a bare WSGI
app on the same keep-alive server that answers every POST with a fixed 201 body: the most
any server could give this client on this machine. The last line is sandbox / baseline;
the goal is an absolute rate of at least 250 sends per second.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from notifications_python_client.notifications import NotificationsAPIClient
from werkzeug.serving import make_server

from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.server import SandboxRequestHandler

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


_FIXED = (
    b'{"id": "740e5834-3a29-46b4-9a6f-16142fde533a", "reference": null, "content": {}, '
    b'"uri": "", "template": {}, "scheduled_for": null}'
)


def _bare_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    start_response(
        "201 CREATED",
        [("Content-Type", "application/json"), ("Content-Length", str(len(_FIXED)))],
    )
    return [_FIXED]


def _run(url: str, key: str, seconds: float, threads_n: int) -> tuple[int, float, list[str]]:
    counts = [0] * threads_n
    errors: list[str] = []
    start = time.perf_counter()
    stop_at = start + seconds
    threads = [
        threading.Thread(target=_worker, args=(url, key, stop_at, counts, i, errors))
        for i in range(threads_n)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - start, errors


def _baseline(key: str, seconds: float, threads_n: int) -> float:
    server = make_server(
        "127.0.0.1", 0, _bare_app, threaded=True, request_handler=SandboxRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        total, elapsed, _ = _run(f"http://127.0.0.1:{server.server_port}", key, seconds, threads_n)
    finally:
        server.shutdown()
    return total / elapsed


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
        total, elapsed, errors = _run(sandbox.url, sandbox.keys.live, args.seconds, args.threads)
        stored = len(sandbox.state.outbox()) - 1  # less the warm-up
        baseline = _baseline(sandbox.keys.live, args.seconds, args.threads)
    rate = total / elapsed
    print(f"threads: {args.threads}, seconds: {elapsed:.2f}, sent: {total}, stored: {stored}")
    if errors:
        print(f"errors: {', '.join(errors)}")
    print(f"sandbox sends per second: {rate:.1f} (goal: at least 250)")
    print(f"baseline (bare WSGI app, same client and server) per second: {baseline:.1f}")
    print(f"sandbox / baseline: {rate / baseline:.2f}")


if __name__ == "__main__":
    main()
