"""What the extension adds to creating an app: time, and threads left over.

Run: ``python benchmarks/app_factory.py [--apps 200] [--rounds 20]``.

An app factory as a test suite's function-scoped ``app`` fixture calls it: a Flask app in
testing mode with a config and a blueprint, then ``DMMail(app)`` (sandbox mode: no key). It
creates ``--apps`` apps with the extension and as many without, alternating in ``--rounds``
rounds, and prints:

* the time per app with and without the extension, and their **ratio** (goal: at most 2.0);
* the **threads left over** after the apps with the extension are dropped (goal: at most 1);
* the same ratio for apps that serve one request through the test client (the extension
  registers its outbox pages, five URL rules, just before an app's first request);
* the same for apps that each send one email (the sandbox starts on first use; apps with the
  same templates share one) while they are alive, and left over once they are
  garbage-collected (their sandbox stops with them).

Times depend on the machine and its load (the ratio less so); thread counts are exact.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import threading
import time
from typing import Any

from flask import Blueprint, Flask

from flask_dmmail import DMMail

os.environ.pop("DM_NOTIFY_KEY", None)

WELCOME = "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01"
SEED: dict[str, Any] = {
    "templates": [
        {
            "id": WELCOME,
            "name": "Welcome",
            "type": "email",
            "subject": "Welcome, ((name))",
            "body": "Hello ((name))",
        }
    ]
}
CONFIG: dict[str, Any] = {
    "SECRET_KEY": "benchmark",
    "DM_NOTIFY_TEMPLATES": {"welcome": WELCOME},
    "DM_NOTIFY_SANDBOX_TEMPLATES": SEED,
}


def create_app(extension: bool, number: int) -> Flask:
    """The factory: an app in testing mode, with flask-dmmail when ``extension``."""
    app = Flask(f"factory_{number}")
    app.testing = True
    app.config.update(CONFIG)
    pages = Blueprint("pages", __name__)
    pages.add_url_rule("/", "index", lambda: "ok")
    app.register_blueprint(pages)
    if extension:
        DMMail(app)
    return app


def settled_thread_count() -> int:
    """The number of threads once those ending now have ended (at most 10 s of waiting)."""
    count = threading.active_count()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = threading.active_count()
        if now == count:
            return now
        count = now
    return count


def create_and_serve(extension: bool, number: int) -> Flask:
    """The factory, then one request through the test client (as most tests make)."""
    app = create_app(extension, number)
    assert app.test_client().get("/").status_code == 200
    return app


def timed(extension: bool, count: int, start: int, factory: Any = create_app) -> float:
    """CPU seconds of this process to create ``count`` apps (kept alive until all are made;
    the collector is off meanwhile, and CPU time is less sensitive than wall time to the
    other work of a shared machine)."""
    apps = []
    gc.collect()
    gc.disable()
    try:
        began = time.process_time()
        for n in range(count):
            apps.append(factory(extension, start + n))
        return time.process_time() - began
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=200, help="apps of each kind (200)")
    parser.add_argument("--rounds", type=int, default=20, help="alternating rounds (20)")
    args = parser.parse_args()
    per_round = max(1, args.apps // args.rounds)
    create_app(True, -1), create_app(False, -2)  # imports, first-use costs
    gc.collect()
    baseline_threads = settled_thread_count()

    with_ext: list[float] = []
    without: list[float] = []
    for r in range(args.rounds):
        for extension in (r % 2 == 0, r % 2 == 1):  # which goes first alternates
            times = with_ext if extension else without
            times.append(timed(extension, per_round, r * per_round) / per_round)
    gc.collect()
    idle_left = settled_thread_count() - baseline_threads
    served_with: list[float] = []
    served_without: list[float] = []
    for r in range(args.rounds):
        for extension in (r % 2 == 0, r % 2 == 1):
            times = served_with if extension else served_without
            times.append(timed(extension, per_round, r * per_round, create_and_serve) / per_round)

    apps = []
    for n in range(args.apps):
        app = create_app(True, n)
        sent = app.extensions["dmmail"].send(
            f"user{n}@example.gov.uk", "welcome", {"name": f"User {n}"}
        )
        assert sent is not None
        apps.append(app)
    urls = {app.extensions["dmmail"].sandbox.url for app in apps}
    alive_threads = settled_thread_count() - baseline_threads
    del apps, app
    gc.collect()
    sent_left = settled_thread_count() - baseline_threads

    total = per_round * args.rounds
    plain = statistics.median(without) * 1000
    extended = statistics.median(with_ext) * 1000
    print(f"apps of each kind: {total} (in {args.rounds} rounds; median per app)")
    print(f"without the extension: {plain:.3f} ms per app")
    print(f"with the extension:    {extended:.3f} ms per app")
    print(f"ratio: {extended / plain:.2f} (goal: at most 2.0)")
    print(f"threads left over after {total} apps with the extension: {idle_left} (goal: at most 1)")
    served = statistics.median(served_with) / statistics.median(served_without)
    print(
        f"with one request each (the outbox pages are registered then): "
        f"{statistics.median(served_without) * 1000:.3f} ms without, "
        f"{statistics.median(served_with) * 1000:.3f} ms with, ratio {served:.2f}"
    )
    print(
        f"{args.apps} apps that each sent an email: {len(urls)} sandbox(es), "
        f"{alive_threads} more threads while they live (one per open keep-alive connection), "
        f"{sent_left} left over once they are garbage-collected (goal: at most 1)"
    )


if __name__ == "__main__":
    main()
