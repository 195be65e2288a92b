"""Batch operations (``/batches``): checking a submitted batch, running its operations on a
worker thread, the status it shows over time, and the tar.gz of its results.

A worker thread runs queued batches one at a time, each operation through a dispatcher the API
hands over (its own handlers), so the store never holds the lock while an operation runs.
When a batch shows ``finished`` the enabled batch webhooks are told.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from . import problems
from .models import BatchDispatch, BatchOperation, BatchRecord, iso, new_id
from .serialise import collection_links

if TYPE_CHECKING:
    from .state import MailchimpState

__all__ = ["BATCH_METHODS", "BATCH_STATUSES", "BatchStore"]

BATCH_STATUSES: Final = ("pending", "preprocessing", "started", "finalizing", "finished")
BATCH_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
_PENDING, _PREPROCESSING, _STARTED, _FINALIZING, _FINISHED = range(5)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_query_value(v) for v in value)
    return str(value)


def _parse_operations(body: Any) -> list[BatchOperation]:
    """The ``operations`` of a POST /batches body, checked against Mailchimp's schema.

    ``params`` become query parameters (lists joined with commas, as the client sends
    ``fields``); ``body`` must be a JSON *string*, as Mailchimp's schema says. The field
    names in the errors (``operations.0.body``) are the sandbox's own.
    """
    body = problems.require_object(body)
    if "operations" not in body:
        raise problems.required_fields("operations")
    operations = body["operations"]
    if not isinstance(operations, list):
        raise problems.schema_mismatch("operations", "array", problems.type_name(operations))
    parsed: list[BatchOperation] = []
    for number, op in enumerate(operations):
        where = f"operations.{number}"
        if not isinstance(op, dict):
            raise problems.schema_mismatch(where, "object", problems.type_name(op))
        missing = [k for k in ("method", "path") if op.get(k) is None]
        if missing:
            message = "Required fields were not provided: " + ", ".join(missing)
            raise problems.invalid_resource(errors=[{"field": where, "message": message}])
        if op["method"] not in BATCH_METHODS:
            message = (
                "Data presented is not one of the accepted values: "
                + ", ".join(BATCH_METHODS)
                + "."
            )
            raise problems.invalid_resource(
                errors=[{"field": f"{where}.method", "message": message}]
            )
        for name, kind, expected in (
            ("path", str, "string"),
            ("params", dict, "object"),
            ("body", str, "string"),
            ("operation_id", str, "string"),
        ):
            value = op.get(name)
            if value is not None and not isinstance(value, kind):
                raise problems.schema_mismatch(
                    f"{where}.{name}", expected, problems.type_name(value)
                )
        params = op.get("params") or {}
        parsed.append(
            BatchOperation(
                method=op["method"],
                path=op["path"],
                params=tuple((str(k), _query_value(v)) for k, v in params.items() if v is not None),
                body=op.get("body"),
                operation_id=op.get("operation_id"),
            )
        )
    return parsed


def _results_archive(
    batch_id: str, results: Sequence[Mapping[str, Any]], per_file: int, mtime: float
) -> bytes:
    """A gzipped tar of JSON files, each an array of ``{status_code, operation_id, response}``."""
    buffer = io.BytesIO()
    chunks = [results[i : i + per_file] for i in range(0, len(results), per_file)] or [[]]
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for number, chunk in enumerate(chunks):
            data = json.dumps(list(chunk), ensure_ascii=False, separators=(",", ":")).encode()
            info = tarfile.TarInfo(f"{batch_id}-{number}.json")
            info.size = len(data)
            info.mtime = int(mtime)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class BatchStore:
    """The account's batches and the worker that runs them; shares the state's lock.

    :param state: the :class:`~flask_dmmail.sandbox.mailchimp.MailchimpState` it belongs to
        (its lock, clock, ``batch_seconds``, ``batch_file_size`` and the webhooks).
    """

    def __init__(self, state: MailchimpState) -> None:
        self._state = state
        self._lock = state.lock
        self._batch_worker: threading.Thread | None = None
        self._batch_wake = threading.Event()
        self._closed = False
        self.reset()

    def reset(self) -> None:
        """No batches; a worker running a dropped batch stops."""
        with self._lock:
            self._batches: dict[str, BatchRecord] = {}
            self._batch_wake.set()

    def start_batch(
        self, body: Any, base: str, *, root: str, dispatch: BatchDispatch
    ) -> dict[str, Any]:
        """POST /batches: check the operations, queue the batch and answer ``pending``.

        A worker thread runs queued batches one at a time (as Mailchimp does): once a batch
        is due to start (half of ``batch_seconds`` after submission; at once when 0) each
        operation goes through ``dispatch`` (the API itself, as the submitter, so errors are
        the same problem documents), then the results are packed into a tar.gz of JSON files
        served at ``{root}/_sandbox/mailchimp/batches/{id}.tar.gz`` once it shows
        ``finished``. Operations take none of the key's connection slots.
        """
        operations = _parse_operations(body)
        with self._lock:
            batch = BatchRecord(
                id=self._unused_batch_id(),
                operations=operations,
                dispatch=dispatch,
                root=root.rstrip("/"),
                submitted=self._state.clock(),
                seconds=max(0.0, float(self._state.batch_seconds)),
            )
            self._batches[batch.id] = batch
            data = self._batch_json(batch, base)
            data["status"] = "pending"  # Mailchimp's answer to the POST, however fast it runs
            self._wake_batch_worker()
            return data

    def get_batch(self, batch_id: str, base: str) -> dict[str, Any]:
        """GET /batches/{id}."""
        with self._lock:
            return self._batch_json(self._batch(batch_id), base)

    def get_batches(self, base: str, *, count: int = 10, offset: int = 0) -> dict[str, Any]:
        """GET /batches: a page of batches."""
        with self._lock:
            batches = list(self._batches.values())
            return {
                "batches": [self._batch_json(b, base) for b in batches[offset : offset + count]],
                "total_items": len(batches),
                "_links": collection_links(f"{base}/batches"),
            }

    def delete_batch(self, batch_id: str) -> None:
        """DELETE /batches/{id}: stops it if it is running; its results are gone."""
        with self._lock:
            self._batch(batch_id)
            del self._batches[batch_id]

    def batch_archive(self, batch_id: str) -> bytes | None:
        """The results tar.gz of a batch that shows ``finished`` (None otherwise)."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None or self._batch_stage(batch, self._state.clock()) != _FINISHED:
                return None
            return batch.archive

    def close(self) -> None:
        """Stop the batch worker (no batch runs afterwards)."""
        with self._lock:
            self._closed = True
            self._batch_wake.set()
            worker = self._batch_worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=2)

    def _batch(self, batch_id: str) -> BatchRecord:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise problems.not_found()
        return batch

    def _unused_batch_id(self) -> str:
        while True:
            candidate = new_id()
            if candidate not in self._batches:
                return candidate

    @staticmethod
    def _time_stage(batch: BatchRecord, now: float) -> int:
        """Where the clock alone puts the batch: a quarter of ``seconds`` per step."""
        if batch.seconds <= 0:
            return _FINISHED
        elapsed = now - batch.submitted
        return max(_PENDING, min(_FINISHED, int(4 * elapsed / batch.seconds)))

    def _batch_stage(self, batch: BatchRecord, now: float) -> int:
        """The status shown: the clock's step, held at ``started`` while operations run."""
        by_time = self._time_stage(batch, now)
        if not batch.claimed:
            return min(by_time, _PREPROCESSING)
        if batch.archive is None:
            return _STARTED
        return max(by_time, _STARTED)

    def _batch_json(self, batch: BatchRecord, base: str) -> dict[str, Any]:
        stage = self._batch_stage(batch, self._state.clock())
        finished = stage == _FINISHED
        completed = max(batch.done_at or 0.0, batch.submitted + batch.seconds)
        href = f"{base}/batches/{batch.id}"
        return {
            "id": batch.id,
            "status": BATCH_STATUSES[stage],
            "total_operations": len(batch.operations),
            "finished_operations": batch.finished,
            "errored_operations": batch.errored,
            "submitted_at": iso(batch.submitted),
            "completed_at": iso(completed) if finished else "",
            "response_body_url": (
                f"{batch.root}/_sandbox/mailchimp/batches/{batch.id}.tar.gz" if finished else ""
            ),
            "_links": [
                {"rel": "parent", "href": f"{base}/batches", "method": "GET"},
                {"rel": "self", "href": href, "method": "GET"},
                {"rel": "delete", "href": href, "method": "DELETE"},
            ],
        }

    def _wake_batch_worker(self) -> None:
        self._batch_wake.set()
        if self._batch_worker is None and not self._closed:
            self._batch_worker = threading.Thread(
                target=self._batch_loop, name="mailchimp-batches", daemon=True
            )
            self._batch_worker.start()

    def _batch_loop(self) -> None:
        """The worker: start due batches one at a time; announce finished ones; exit idle."""
        while True:
            job: BatchRecord | None = None
            waiting = False
            with self._lock:
                self._batch_wake.clear()
                now = self._state.clock()
                for batch in self._batches.values():
                    stage = self._time_stage(batch, now)
                    if not batch.claimed:
                        if job is None and stage >= _STARTED:
                            job = batch
                        else:
                            waiting = True
                    elif batch.archive is not None and not batch.announced:
                        if stage == _FINISHED:
                            batch.announced = True
                            self._queue_batch_webhooks(batch)
                        else:
                            waiting = True
                stop = self._closed or (job is None and not waiting)
                if job is not None and not self._closed:
                    job.claimed = True
                if stop:
                    self._batch_worker = None
            self._state.webhook_store.flush_webhooks()
            if stop:
                return
            if job is not None:
                self._run_batch(job)
            else:
                # The clock may be the test's own: look again often rather than sleep to a time.
                self._batch_wake.wait(0.05)

    def _run_batch(self, batch: BatchRecord) -> None:
        for operation in batch.operations:
            with self._lock:
                if self._closed or self._batches.get(batch.id) is not batch:
                    return  # deleted (Mailchimp's DELETE stops a running batch) or reset
            try:
                status, text = batch.dispatch(operation)
            except Exception:  # the dispatcher answers errors itself; a last guard
                status = 500
                text = json.dumps(
                    problems.internal_error().body(str(uuid.uuid4())), separators=(",", ":")
                )
            with self._lock:
                batch.results.append(
                    {
                        "status_code": status,
                        "operation_id": operation.operation_id,
                        "response": text,
                    }
                )
                batch.finished += 1
                if status >= 400:
                    batch.errored += 1
        with self._lock:
            results, batch.results = batch.results, []
            per_file = max(1, int(self._state.batch_file_size))
            mtime = self._state.clock()
        archive = _results_archive(batch.id, results, per_file, mtime)
        with self._lock:
            batch.archive = archive
            batch.done_at = self._state.clock()

    def _queue_batch_webhooks(self, batch: BatchRecord) -> None:
        """The batch webhook POST (form-encoded, like list webhooks) to each enabled one.

        Only ``data[response_body_url]`` is confirmed; the other keys follow the batch's
        fields and ``type`` is from memory of Mailchimp's docs (unverified).
        """
        webhooks = self._state.webhook_store
        hooks = webhooks.enabled_batch_webhooks()
        if not hooks:
            return
        data = self._batch_json(batch, "")
        form: list[tuple[str, str]] = [
            ("type", "batch_operation_completed"),
            ("fired_at", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self._state.clock()))),
        ]
        for key in (
            "id",
            "status",
            "total_operations",
            "finished_operations",
            "errored_operations",
            "submitted_at",
            "completed_at",
            "response_body_url",
        ):
            form.append((f"data[{key}]", str(data[key])))
        for hook in hooks:
            webhooks.enqueue(hook["url"], "batch_operation_completed", list(form))
