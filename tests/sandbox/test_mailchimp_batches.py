"""Async batch operations in the sandbox's Mailchimp API, through the official client.

Operations run through the sandbox's own ``/3.0`` handlers; a finished batch's results are a
gzipped tar of JSON files at ``response_body_url`` (outside ``/3.0``, fetched without auth).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MailchimpState, member_address, subscriber_hash
from flask_dmmail.sandbox.mailchimp.batches import BATCH_STATUSES
from flask_dmmail.sandbox.mailchimp.models import iso
from tests.sandbox.mailchimp_helpers import MailchimpServer, make_client, problem

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
EMAILS = [member_address(f"supplier{n:02d}") for n in range(25)]
NEW = member_address("new.supplier")
DOOMED = member_address("doomed")
LATER = member_address("later")


def _wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll until ``condition()`` is truthy; the cap only guards against a hung test."""
    deadline = time.monotonic() + 20
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def _until(client: Any, batch_id: str, status: str, seen: list[str] | None = None) -> Any:
    """Poll the batch's status until it is ``status``; every status read goes into ``seen``."""

    def check() -> Any:
        batch = client.batches.status(batch_id)
        if seen is not None:
            seen.append(batch["status"])
        return batch if batch["status"] == status else None

    return _wait_for(check, f"batch {batch_id} to be {status}")


def _results(url: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Download a batch's results as a client would (no auth): file names and every entry."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    names: list[str] = []
    entries: list[dict[str, Any]] = []
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            names.append(member.name)
            extracted = tar.extractfile(member)
            assert extracted is not None
            entries.extend(json.loads(extracted.read()))
    return names, entries


def _page(list_id: str, offset: int) -> dict[str, Any]:
    return {
        "method": "GET",
        "path": f"/lists/{list_id}/members",
        "params": {
            "count": 10,
            "offset": offset,
            "status": "subscribed",
            "fields": ["members.email_address", "total_items"],
        },
        "operation_id": f"page-{offset}",
    }


def _add(list_id: str, email: str, operation_id: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "method": "POST",
        "path": f"/lists/{list_id}/members",
        "body": json.dumps({"email_address": email, "status": "subscribed"}),
    }
    if operation_id is not None:
        op["operation_id"] = operation_id
    return op


@pytest.fixture
def audience(mc: MailchimpState, list_id: str) -> str:
    mc.add_members(list_id, EMAILS)
    return list_id


@pytest.fixture
def fake_clock(mc: MailchimpState) -> list[float]:
    """The state's clock, moved by the test (``now[0] += 1``); reset restores the real one."""
    now = [1_700_000_000.0]
    mc.clock = lambda: now[0]
    return now


def test_start_answers_pending_and_publishes_no_results_yet(
    client: Any, mc: MailchimpState, mc_server: MailchimpServer, audience: str
) -> None:
    mc.batch_seconds = 3600
    batch = client.batches.start({"operations": [_page(audience, 0), _page(audience, 10)]})
    assert re.fullmatch(r"[0-9a-f]{10}", batch["id"])
    assert batch["status"] == "pending"
    assert (
        batch["total_operations"],
        batch["finished_operations"],
        batch["errored_operations"],
    ) == (2, 0, 0)
    assert TIME.match(batch["submitted_at"])
    assert batch["completed_at"] == ""
    assert batch["response_body_url"] == ""
    links = {link["rel"]: link for link in batch["_links"]}
    assert links["self"]["href"] == f"{mc_server.url}/3.0/batches/{batch['id']}"
    assert links["delete"]["method"] == "DELETE"
    status = client.batches.status(batch["id"])
    assert status["status"] == "pending"
    assert status["response_body_url"] == ""
    unpublished = f"{mc_server.url}/_sandbox/mailchimp/batches/{batch['id']}.tar.gz"
    assert requests.get(unpublished, timeout=10).status_code == 404


def test_finished_batch_holds_each_operations_response(
    client: Any, mc: MailchimpState, mc_server: MailchimpServer, audience: str
) -> None:
    mc.batch_file_size = 2  # 5 results: 3 JSON files
    upsert = {
        "method": "PUT",
        "path": f"/lists/{audience}/members/{subscriber_hash(NEW)}",
        "body": json.dumps({"email_address": NEW, "status_if_new": "pending"}),
    }
    started = client.batches.start(
        {
            "operations": [
                _page(audience, 0),
                _page(audience, 10),
                _page(audience, 20),
                _add(audience, EMAILS[3], "exists"),
                upsert,
            ]
        }
    )
    batch = _until(client, started["id"], "finished")
    assert (
        batch["total_operations"],
        batch["finished_operations"],
        batch["errored_operations"],
    ) == (5, 5, 1)
    assert TIME.match(batch["completed_at"])
    assert batch["submitted_at"] == started["submitted_at"]
    url = batch["response_body_url"]
    assert url == f"{mc_server.url}/_sandbox/mailchimp/batches/{batch['id']}.tar.gz"

    names, entries = _results(url)
    assert len(names) == 3
    assert all(name.endswith(".json") for name in names)
    assert len(entries) == 5
    for entry in entries:
        assert set(entry) == {"status_code", "operation_id", "response"}
        assert isinstance(entry["response"], str)  # the body as a JSON string
    by_id = {entry["operation_id"]: entry for entry in entries}
    assert set(by_id) == {"page-0", "page-10", "page-20", "exists", None}

    for offset in (0, 10, 20):
        entry = by_id[f"page-{offset}"]
        assert entry["status_code"] == 200
        assert json.loads(entry["response"]) == {
            "members": [{"email_address": e} for e in EMAILS[offset : offset + 10]],
            "total_items": 25,
        }

    exists = by_id["exists"]
    assert exists["status_code"] == 400
    body = json.loads(exists["response"])
    assert body["title"] == "Member Exists"
    assert body["detail"] == (
        f"{EMAILS[3]} is already a list member. Use PUT to insert or update list members."
    )
    assert "type" not in body
    assert body["instance"]

    put = by_id[None]
    assert put["status_code"] == 200
    member = json.loads(put["response"])
    assert (member["email_address"], member["status"]) == (NEW, "pending")
    assert client.lists.get_list_member(audience, subscriber_hash(NEW))["status"] == "pending"
    assert sum(1 for e in entries if e["status_code"] >= 400) == batch["errored_operations"]


def test_failing_operations_come_back_as_the_apis_problem_documents(
    client: Any, audience: str
) -> None:
    operations = [
        {"method": "GET", "path": "/lists/0000000000/members", "operation_id": "no-list"},
        {"method": "GET", "path": "/no/such/thing", "operation_id": "no-route"},
        {"method": "DELETE", "path": f"/lists/{audience}/members", "operation_id": "no-method"},
        {
            "method": "POST",
            "path": f"/lists/{audience}/members",
            "body": "{not json",
            "operation_id": "bad-json",
        },
        {"method": "GET", "path": f"/lists/{audience}", "operation_id": "fine"},
    ]
    started = client.batches.start({"operations": operations})
    batch = _until(client, started["id"], "finished")
    assert (batch["finished_operations"], batch["errored_operations"]) == (5, 4)
    _names, entries = _results(batch["response_body_url"])
    by_id = {e["operation_id"]: (e["status_code"], json.loads(e["response"])) for e in entries}
    assert by_id["no-list"][0] == 404
    assert by_id["no-list"][1]["title"] == "Resource Not Found"
    assert by_id["no-route"][0] == 404
    assert by_id["no-method"][0] == 405
    assert by_id["no-method"][1]["title"] == "Method Not Allowed"
    assert by_id["bad-json"][0] == 400
    assert by_id["bad-json"][1]["title"] == "JSON Parse Exception"
    assert by_id["fine"][0] == 200
    assert by_id["fine"][1]["id"] == audience


def test_unknown_batch_is_404(client: Any) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.batches.status("0123456789")
    assert exc.value.status_code == 404
    assert problem(exc)["title"] == "Resource Not Found"
    with pytest.raises(ApiClientError) as exc:
        client.batches.delete_request("0123456789")
    assert exc.value.status_code == 404


def test_delete_removes_a_finished_batch_and_its_results(client: Any, audience: str) -> None:
    started = client.batches.start({"operations": [_page(audience, 0)]})
    url = _until(client, started["id"], "finished")["response_body_url"]
    assert requests.get(url, timeout=10).status_code == 200
    result = client.batches.delete_request(started["id"])
    assert isinstance(result, requests.Response) and result.status_code == 204
    with pytest.raises(ApiClientError) as exc:
        client.batches.status(started["id"])
    assert exc.value.status_code == 404
    assert client.batches.list()["total_items"] == 0
    assert requests.get(url, timeout=10).status_code == 404


def test_a_deleted_pending_batch_never_runs(
    client: Any, mc: MailchimpState, audience: str, fake_clock: list[float]
) -> None:
    mc.batch_seconds = 4
    doomed = client.batches.start({"operations": [_add(audience, DOOMED)]})
    client.batches.delete_request(doomed["id"])
    later = client.batches.start({"operations": [_add(audience, LATER)]})
    fake_clock[0] += 4  # both due now; batches run one at a time in the order they came
    _until(client, later["id"], "finished")
    assert client.lists.get_list_member(audience, LATER)
    with pytest.raises(ApiClientError) as exc:
        client.lists.get_list_member(audience, DOOMED)
    assert exc.value.status_code == 404


def test_list_pages_through_batches(client: Any, mc: MailchimpState, audience: str) -> None:
    mc.batch_seconds = 3600
    ids = [client.batches.start({"operations": [_page(audience, 0)]})["id"] for _ in range(3)]
    listed = client.batches.list()
    assert listed["total_items"] == 3
    assert [b["id"] for b in listed["batches"]] == ids
    assert all(b["status"] == "pending" for b in listed["batches"])
    page = client.batches.list(count=2, offset=1)
    assert [b["id"] for b in page["batches"]] == ids[1:]
    assert page["total_items"] == 3
    assert client.batches.list(fields=["total_items"]) == {"total_items": 3}


def test_status_moves_through_every_step(
    client: Any, mc: MailchimpState, audience: str, fake_clock: list[float]
) -> None:
    mc.batch_seconds = 4  # a quarter each: pending, preprocessing, started, finalizing
    submitted = fake_clock[0]
    ops = [_page(audience, 0), _page(audience, 10), _add(audience, EMAILS[0])]
    started = client.batches.start({"operations": ops})
    assert started["status"] == "pending"
    assert started["submitted_at"] == iso(submitted)
    seen: list[str] = []
    assert _until(client, started["id"], "pending", seen)["finished_operations"] == 0

    fake_clock[0] += 1
    assert _until(client, started["id"], "preprocessing", seen)["finished_operations"] == 0
    fake_clock[0] += 1
    running = _until(client, started["id"], "started", seen)
    assert running["completed_at"] == ""
    assert running["response_body_url"] == ""
    fake_clock[0] += 1
    finalizing = _until(client, started["id"], "finalizing", seen)
    assert (finalizing["finished_operations"], finalizing["errored_operations"]) == (3, 1)
    assert finalizing["response_body_url"] == ""
    fake_clock[0] += 1
    finished = _until(client, started["id"], "finished", seen)
    assert finished["completed_at"] == iso(submitted + 4)
    assert finished["response_body_url"]

    order = [BATCH_STATUSES.index(s) for s in seen]
    assert order == sorted(order)  # never backwards
    assert set(seen) == set(BATCH_STATUSES)


def test_operations_take_no_connection_slot(
    client: Any,
    mc: MailchimpState,
    mc_server: MailchimpServer,
    audience: str,
    fake_clock: list[float],
) -> None:
    mc.batch_seconds = 4
    mc.connection_limit = 2
    ops = [{"method": "GET", "path": "/ping"}, _page(audience, 0), _page(audience, 10)]
    started = client.batches.start({"operations": ops})

    # Hold both of the key's slots open with stalled pings, then let the batch run.
    mc_server.sandbox_state.set_faults(stall_rate=1.0, stall_seconds=30, paths=["/3.0/ping"])
    held = [threading.Thread(target=_ping, args=(mc_server.url, mc.api_key)) for _ in range(2)]
    for thread in held:
        thread.start()
    try:
        _wait_for(lambda: mc.in_flight(mc.api_key) == 2, "both slots to be taken")
        with pytest.raises(ApiClientError) as exc:
            client.lists.get_list(audience)
        assert exc.value.status_code == 429
        watcher = make_client(mc_server.url, mc.add_api_key())  # same account, free slots
        fake_clock[0] += 4
        batch = _until(watcher, started["id"], "finished")
        assert mc.in_flight(mc.api_key) == 2
    finally:
        mc_server.sandbox_state.clear_faults()
        for thread in held:
            thread.join(timeout=20)
    assert (batch["finished_operations"], batch["errored_operations"]) == (3, 0)
    _names, entries = _results(batch["response_body_url"])
    assert [e["status_code"] for e in entries] == [200, 200, 200]


def _ping(url: str, key: str) -> None:
    with contextlib.suppress(ApiClientError):
        make_client(url, key).ping.get()


def test_start_checks_the_operations(client: Any, audience: str) -> None:
    cases: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({}, {"field": "", "message": "Required fields were not provided: operations"}),
        (
            {"operations": [{"method": "GET"}]},
            {"field": "operations.0", "message": "Required fields were not provided: path"},
        ),
        (
            {"operations": [{"method": "FETCH", "path": "/ping"}]},
            {
                "field": "operations.0.method",
                "message": "Data presented is not one of the accepted values: "
                "GET, POST, PUT, PATCH, DELETE.",
            },
        ),
        (
            {"operations": [{"method": "POST", "path": "/lists", "body": {"name": "x"}}]},
            {
                "field": "operations.0.body",
                "message": "Schema describes string, object found instead",
            },
        ),
    ]
    for body, error in cases:
        with pytest.raises(ApiClientError) as exc:
            client.batches.start(body)
        assert exc.value.status_code == 400
        document = problem(exc)
        assert document["title"] == "Invalid Resource"
        assert document["errors"] == [error]
    assert client.batches.list()["total_items"] == 0


def test_batch_webhook_gets_the_results_url(client: Any, mc: MailchimpState, audience: str) -> None:
    hook = client.batchWebhooks.create({"url": "http://127.0.0.1:9/batches"})
    assert (hook["url"], hook["enabled"]) == ("http://127.0.0.1:9/batches", True)
    off = client.batchWebhooks.create({"url": "http://127.0.0.1:9/off", "enabled": False})
    assert client.batchWebhooks.list()["total_items"] == 2
    assert client.batchWebhooks.get(off["id"])["enabled"] is False

    started = client.batches.start({"operations": [_page(audience, 0)]})
    batch = _until(client, started["id"], "finished")

    def delivered() -> list[Any]:
        return [d for d in mc.wait_for_webhooks() if d.type == "batch_operation_completed"]

    [delivery] = _wait_for(delivered, "the batch webhook")
    assert delivery.url == "http://127.0.0.1:9/batches"
    form = dict(delivery.form)
    assert form["data[response_body_url]"] == batch["response_body_url"]
    assert form["data[id]"] == batch["id"]
    assert form["data[status]"] == "finished"

    result = client.batchWebhooks.remove(hook["id"])
    assert isinstance(result, requests.Response) and result.status_code == 204
    with pytest.raises(ApiClientError) as exc:
        client.batchWebhooks.get(hook["id"])
    assert exc.value.status_code == 404
