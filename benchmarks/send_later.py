"""A view's response time with ``send_later`` against ``send``, at 100 ms of Notify latency.

Run: ``python benchmarks/send_later.py [--requests 200] [--block 20] [--latency 0.1]``.

The sandbox runs in another process with ``--latency`` seconds added to every Notify call;
a redis-server (Debian's) on a free loopback port is the Celery broker and keeps the queued
emails; a real ``celery worker`` process sends them. Two views of one app answer a form
post: one calls ``send`` (it waits for Notify), the other ``send_later`` (it checks the email,
writes it to Redis and publishes the task). Requests go through Flask's test client in
blocks, alternating ABBA after a warm-up. At the end the benchmark waits for the worker to
send every queued email and checks the sandbox's outbox: each email once.

The last line is send_later / send, the mean response time relative to ``send``'s; the goal
is at most 0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from celery import Celery
from flask import Flask, request

from flask_dmmail import DMMail, Mailer

TEMPLATE_ID = "8d0e2b9a-6c1f-4e3d-9a7b-5c4d3e2f1a0b"
SEED = {
    "templates": [
        {
            "id": TEMPLATE_ID,
            "name": "Reset",
            "type": "email",
            "subject": "Reset your password",
            "body": "Reset it here: ((url))",
        }
    ]
}


def create_app(broker: str, notify_url: str, key: str) -> Flask:
    """The app: two views that send a reset email, now or later."""
    celery_app = Celery("send_later_benchmark", broker=broker)
    celery_app.conf.update(worker_prefetch_multiplier=1, task_ignore_result=True)
    app = Flask("send_later_benchmark")
    app.config.update(
        SECRET_KEY="benchmark",
        DM_NOTIFY_KEY=key,
        DM_NOTIFY_BASE_URL=notify_url,
        DM_NOTIFY_TEMPLATES={"reset_password": TEMPLATE_ID},
        DM_MAIL_SANDBOX=False,
        DM_ENVIRONMENT="production",
    )
    dmmail = DMMail(app, celery=celery_app)

    @app.post("/now")
    def now() -> str:
        sent = dmmail.send(request.form["email"], "reset_password", {"url": request.form["url"]})
        assert sent is not None
        return "sent"

    @app.post("/later")
    def later() -> str:
        dmmail.send_later(request.form["email"], "reset_password", {"url": request.form["url"]})
        return "queued"

    return app


if os.environ.get("SEND_LATER_BENCHMARK_WORKER"):  # the module the worker loads
    flask_app = create_app(
        os.environ["BENCH_BROKER"], os.environ["BENCH_NOTIFY_URL"], os.environ["BENCH_KEY"]
    )
    celery_app = flask_app.extensions["dmmail"].celery


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            directory,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(600):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return process, f"redis://127.0.0.1:{port}/0"


def _block(post: Callable[[int], None], start: int, count: int) -> float:
    began = time.perf_counter()
    for i in range(start, start + count):
        post(i)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per view (200)")
    parser.add_argument("--block", type=int, default=20, help="requests per block (20)")
    parser.add_argument("--latency", type=float, default=0.1, help="Notify latency, s (0.1)")
    args = parser.parse_args(argv)

    from sandbox_process import SandboxProcess

    options = ["--rate-limit", "100000000", "--daily-limit", "100000000"]
    with tempfile.TemporaryDirectory() as tmp, SandboxProcess(SEED, *options) as sandbox:
        sandbox.control("POST", "faults", {"latency": args.latency})
        redis_process, broker = _redis(tmp)
        here = Path(__file__).resolve().parent
        env = {
            **os.environ,
            "SEND_LATER_BENCHMARK_WORKER": "1",
            "BENCH_BROKER": broker,
            "BENCH_NOTIFY_URL": sandbox.url,
            "BENCH_KEY": sandbox.key,
            "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]),
        }
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "send_later:celery_app",
                "worker",
                "--loglevel=WARNING",
                "--concurrency=8",
                "--pool=threads",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=here,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        app = create_app(broker, sandbox.url, sandbox.key)
        mailer: Mailer = app.extensions["dmmail"]
        try:
            client = app.test_client()

            def poster(path: str) -> Callable[[int], None]:
                def post(i: int) -> None:
                    form = {"email": f"user{i}@example.gov.uk", "url": f"https://x/{path}/{i}"}
                    response = client.post(f"/{path}", data=form)
                    assert response.status_code == 200, response.text

                return post

            now, later = poster("now"), poster("later")
            warmup = 5
            _block(now, 0, warmup)
            _block(later, 0, warmup)
            totals = {"send": 0.0, "send_later": 0.0}
            blocks = max(1, args.requests // args.block)
            index = warmup
            for b in range(blocks):
                order = [("send", now), ("send_later", later)]
                if b % 2:
                    order.reverse()  # ABBA: neither view always goes first
                for name, post in order:
                    totals[name] += _block(post, index, args.block)
                index += args.block
            count = blocks * args.block

            expected = 2 * (warmup + count)
            deadline = time.monotonic() + 600
            stored = sandbox.check_outbox(expected)
            while stored[0] < expected and time.monotonic() < deadline:
                time.sleep(0.5)
                stored = sandbox.check_outbox(expected)
        finally:
            mailer.close()
            worker.terminate()
            worker.wait(60)
            redis_process.terminate()
            redis_process.wait(60)

    for name in ("send", "send_later"):
        mean = totals[name] / count * 1000
        print(f"{name:>10}: {count} requests, mean response {mean:.1f} ms")
    print(
        f"outbox: {stored[0]} stored of {expected}, {stored[1]} duplicate references, "
        f"{stored[2]} missing"
    )
    print(f"send_later / send = {totals['send_later'] / totals['send']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
