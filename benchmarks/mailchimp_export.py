"""Exporting a whole Mailchimp audience: ``Audiences.members()`` against today's export loop.

Run: ``python benchmarks/mailchimp_export.py [--members 100000] [--naive-page 100]``.

The sandbox runs in a child process (so the memory figures are the exporting process's
alone), with the audience seeded through the Mailchimp state's bulk ``add_members``. Both
exports use the official ``mailchimp-marketing`` client over HTTP on 127.0.0.1:

* ``members()``: pages of 1,000 with only the fields it needs (``email_address``,
  ``status``, ``last_changed``), walked by ``last_changed`` with the exactly-once checks;
* the baseline, today's ``get_email_addresses_from_list``: pages of 100 by offset with
  every field, until an empty page.

Each runs twice: once for the wall time, once under tracemalloc for the peak of Python
allocations while exporting (tracing slows every allocation, so it is not timed). Each
prints time, requests, members per second and that peak. ``members()`` also runs over an
audience a tenth the size, to show what its memory grows with (an 8-byte fingerprint per
member, which is what lets it never yield a member twice). The last line is the ratio
baseline / members().
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import tracemalloc
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import mailchimp_marketing
from flask import Flask

from flask_dmmail import DMMail
from flask_dmmail.mailchimp import Audiences

LIST_ID = "b3c4d5e6f7"
SMALL_LIST_ID = "a2b3c4d5e6"


def _serve(count: int, conn: Connection) -> None:
    """Child process: a sandbox with ``count`` subscribed members, until told to stop."""
    from flask_dmmail.sandbox import Sandbox

    sandbox = Sandbox.start()
    state = sandbox.state.mailchimp
    state.ensure_list(LIST_ID, "Benchmark suppliers")
    started = time.perf_counter()
    state.add_members(
        LIST_ID,
        (f"supplier{i:07d}@digital-marketplace.example.gov.uk" for i in range(count)),
        merge_fields={"FNAME": "Sam", "LNAME": "Supplier", "COMPANY": "Sam's Software Ltd"},
        tags=["dos7"],
    )
    state.ensure_list(SMALL_LIST_ID, "Benchmark suppliers, a tenth")
    state.add_members(
        SMALL_LIST_ID,
        (f"supplier{i:07d}@digital-marketplace.example.gov.uk" for i in range(count // 10)),
    )
    conn.send((sandbox.url, state.api_key, time.perf_counter() - started))
    conn.recv()  # wait for the parent
    sandbox.stop()


def _naive(url: str, key: str, page: int) -> Iterator[str]:
    """Today's export: offset paging, every field, until an empty page."""
    client = mailchimp_marketing.Client({"api_key": key, "server": "server"})
    client.api_client.host = f"{url}/3.0"
    offset = 0
    while True:
        data = client.lists.get_list_members_info(
            LIST_ID, count=page, offset=offset, status="subscribed"
        )
        members = data["members"]
        if not members:
            return
        for member in members:
            yield member["email_address"]
        offset += page


def _measure(export: Callable[[], Iterator[Any]]) -> tuple[float, int, float]:
    """Wall time of one run (untraced: tracemalloc slows every allocation), then the peak
    of Python allocations during a second, traced run."""
    started = time.perf_counter()
    count = sum(1 for _ in export())
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    tracemalloc.reset_peak()
    traced = sum(1 for _ in export())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert traced == count
    return elapsed, count, peak / (1024 * 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--naive-page", type=int, default=100)
    args = parser.parse_args()

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(args.members, child), daemon=True
    )
    server.start()
    try:
        url, key, seeded = parent.recv()
        print(f"sandbox: {url}, {args.members} members seeded in {seeded:.2f} s (bulk add_members)")

        app = Flask("mailchimp_export_benchmark")
        app.config.update(
            TESTING=True,
            DM_MAIL_SANDBOX=False,
            DM_NOTIFY_KEY="bench-" + "-".join(["00000000-0000-4000-8000-000000000000"] * 2),
            DM_MAILCHIMP_API_KEY=key,
            DM_MAILCHIMP_BASE_URL=f"{url}/3.0",
            DM_MAILCHIMP_AUDIENCES={"suppliers": LIST_ID, "tenth": SMALL_LIST_ID},
        )
        DMMail(app)
        audiences: Audiences = app.extensions["dmmail"].mailchimp

        def ours() -> Iterator[Any]:
            return audiences.members("suppliers", fields=["email_address"])

        def theirs() -> Iterator[Any]:
            return _naive(url, key, args.naive_page)

        def tenth() -> Iterator[Any]:
            return audiences.members("tenth", fields=["email_address"])

        small_time, small_count, small_peak = _measure(tenth)
        ours_time, ours_count, ours_peak = _measure(ours)
        naive_time, naive_count, naive_peak = _measure(theirs)
        ours_requests = -(-ours_count // 1000)
        naive_requests = naive_count // args.naive_page + 1
        print(
            f"members():          {ours_time:7.2f} s  {ours_count:7d} members  "
            f"~{ours_requests:5d} requests  {ours_count / ours_time:9.0f} members/s  "
            f"peak {ours_peak:6.2f} MB"
        )
        per_member = (ours_peak - small_peak) * 1024 * 1024 / max(1, ours_count - small_count)
        print(
            f"members(), a tenth: {small_time:7.2f} s  {small_count:7d} members  "
            f"~{-(-small_count // 1000):5d} requests  {small_count / small_time:9.0f} members/s  "
            f"peak {small_peak:6.2f} MB  (memory per extra member: "
            f"{per_member:.1f} bytes)"
        )
        print(
            f"naive {args.naive_page}-per-page: {naive_time:7.2f} s  {naive_count:7d} members  "
            f"{naive_requests:6d} requests  {naive_count / naive_time:9.0f} members/s  "
            f"peak {naive_peak:6.2f} MB"
        )
        if ours_count != args.members or naive_count != args.members:
            print("WARNING: an export did not return every member")
        print(
            f"ratio naive/members(): time {naive_time / ours_time:.1f}x, "
            f"peak memory {naive_peak / ours_peak:.2f}x"
        )
    finally:
        parent.send("stop")
        server.join(10)


if __name__ == "__main__":
    main()
