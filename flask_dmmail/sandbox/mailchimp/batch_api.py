"""The HTTP side of batch operations, outside the ``/3.0`` blueprint: running one operation
through the API's own handlers (:func:`batch_dispatcher`), and serving a finished batch's
results where Mailchimp's ``response_body_url`` points (:func:`mailchimp_downloads_blueprint`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response
from werkzeug.test import Client

from . import problems
from .models import BatchDispatch, BatchOperation
from .wsgi import BATCH_OPERATION

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .state import MailchimpState

__all__ = ["batch_dispatcher", "mailchimp_downloads_blueprint"]


_S3_NOT_FOUND = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
)


def mailchimp_downloads_blueprint(state: MailchimpState) -> Blueprint:
    """What Mailchimp keeps off its API: a finished batch's results, which the real service
    puts on S3 behind an unauthenticated link (``response_body_url``).

    ``GET /_sandbox/mailchimp/batches/<id>.tar.gz``: the gzipped tar, or S3's 404 while the
    batch is unfinished, deleted or unknown.
    """
    bp = Blueprint("mailchimp_downloads", __name__, url_prefix="/_sandbox/mailchimp")

    @bp.get("/batches/<batch_id>.tar.gz")
    def batch_results(batch_id: str) -> Response:
        archive = state.batch_store.batch_archive(batch_id)
        if archive is None:
            return Response(_S3_NOT_FOUND, status=404, content_type="application/xml")
        return Response(archive, content_type="application/gzip")

    return bp


def batch_dispatcher(app: Flask, authorization: str, root: str) -> BatchDispatch:
    """Run batch operations through ``app``'s own handlers, authenticated as the batch was.

    The call goes to the Flask app beneath its WSGI middleware, so an operation meets neither
    the connection cap nor injected faults; it is marked so the blueprint does not count it
    either. It runs in the state's worker thread, so it shares no request context.
    """

    def flask_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return Flask.wsgi_app(app, environ, start_response)

    client = Client(flask_app, use_cookies=False)
    headers = {"Authorization": authorization, "Content-Type": "application/json"}

    def dispatch(operation: BatchOperation) -> tuple[int, str]:
        path, _, query = operation.path.partition("?")
        pairs = [
            *([query] if query else []),
            *([urlencode(operation.params)] if operation.params else []),
        ]
        try:
            response = client.open(
                path="/3.0/" + path.lstrip("/"),
                base_url=root + "/",
                method=operation.method,
                query_string="&".join(pairs),
                data=(operation.body or "").encode("utf-8"),
                headers=headers,
                environ_overrides={BATCH_OPERATION: True},
            )
        except Exception:
            text = json.dumps(
                problems.internal_error().body(str(uuid.uuid4())), separators=(",", ":")
            )
            return 500, text
        return response.status_code, response.get_data(as_text=True)

    return dispatch
