"""One sender process of the shared-budget proof tests: ``python -m tests.budget_worker``.

It builds an app against the sandbox (and, unless ``--no-redis``, the shared budget in
Redis), sends ``--count`` emails to ``user<n>@example.gov.uk`` from ``--first`` on, and
prints one JSON line: what it sent and every error it met, by class.

- ``--mode send``: ``Mailer.send`` from ``--threads`` threads. A transient error (a 429, Redis
  not answering) is retried with ``allow_resend=False``, as a careful caller would: the
  email is looked up by its reference before it is posted again.
- ``--mode bulk``: one ``Mailer.send_bulk`` run with a journal; a run that stops
  (``BulkAbortedError``: Redis did not come back in time) is run again with the same
  journal, which resumes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from flask import Flask

from flask_dmmail import DMMail, Mailer
from flask_dmmail.budget import BULK, TRANSACTIONAL
from flask_dmmail.errors import BulkAbortedError, DMMailError

TEMPLATES = {
    "welcome": "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01",
    "reset_password": "0c2b8e7a-1f3d-4e5a-8b6c-7d9e0f1a2b3c",
}


def address(n: int) -> str:
    """The recipient of email ``n``."""
    return f"user{n}@example.gov.uk"


class Warnings(logging.Handler):
    """Counts the library's warnings about Redis not answering (a pause)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.redis_down = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "did not answer" in record.getMessage():
            self.redis_down += 1


def make_app(args: argparse.Namespace) -> Flask:
    app = Flask(f"budget_worker_{args.first}")
    config: dict[str, Any] = {
        "SECRET_KEY": "budget-worker-secret",
        "DM_NOTIFY_KEY": args.key,
        "DM_NOTIFY_BASE_URL": args.notify_url,
        "DM_NOTIFY_TEMPLATES": TEMPLATES,
        "DM_NOTIFY_RETRY_BACKOFF": 0.05,
        "DM_NOTIFY_TIMEOUT": 10,
        "DM_MAIL_SANDBOX": False,
        "DM_ENVIRONMENT": "production",
        "DM_NOTIFY_RATE_LIMIT": args.rate_limit,
    }
    if args.redis_url:
        config["DM_MAIL_REDIS_URL"] = args.redis_url
    app.config.update(config)
    DMMail(app)
    return app


def send_all(mailer: Mailer, args: argparse.Namespace, errors: Counter[str]) -> int:
    numbers = list(range(args.first, args.first + args.count))
    lock = threading.Lock()
    sent = 0

    def worker() -> None:
        nonlocal sent
        while True:
            with lock:
                if not numbers:
                    return
                n = numbers.pop(0)
            allow_resend = True
            while True:
                try:
                    mailer.send(
                        address(n),
                        "reset_password",
                        {"url": f"https://example.gov.uk/reset/{n}"},
                        allow_resend=allow_resend,
                    )
                except DMMailError as error:
                    with lock:
                        errors[type(error).__name__] += 1
                    if not error.transient:
                        return
                    allow_resend = False
                    continue
                with lock:
                    sent += 1
                break

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent


def bulk_all(mailer: Mailer, args: argparse.Namespace, errors: Counter[str]) -> int:
    recipients = [
        (address(n), {"url": f"https://example.gov.uk/reset/{n}"})
        for n in range(args.first, args.first + args.count)
    ]
    while True:
        try:
            report = mailer.send_bulk("reset_password", recipients, journal=args.journal)
        except BulkAbortedError as error:
            cause = error.__cause__
            errors[f"BulkAbortedError({type(cause).__name__})"] += 1
            if not isinstance(cause, DMMailError) or not cause.transient:
                return 0
            continue
        errors.update({f"report:{k}": v for k, v in report.failed_by_class.items()})
        return report.sent + report.already_sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("send", "bulk"), required=True)
    parser.add_argument("--notify-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--rate-limit", type=float, default=3000)
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--journal", type=Path)
    args = parser.parse_args(argv)
    warnings = Warnings()
    logging.getLogger("flask_dmmail").addHandler(warnings)
    app = make_app(args)
    mailer = app.extensions["dmmail"]
    errors: Counter[str] = Counter()
    try:
        with app.app_context():
            if args.mode == "send":
                sent = send_all(mailer, args, errors)
            else:
                sent = bulk_all(mailer, args, errors)
        waits: dict[str, list[float]] = {}
        if mailer.budget is not None:
            waits = {kind: list(mailer.budget.waits[kind]) for kind in (TRANSACTIONAL, BULK)}
    finally:
        mailer.close()
    print(
        json.dumps(
            {
                "sent": sent,
                "errors": dict(errors),
                "redis_down_warnings": warnings.redis_down,
                "max_wait": {k: max(v, default=0.0) for k, v in waits.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
