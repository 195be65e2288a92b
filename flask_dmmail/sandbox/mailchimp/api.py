"""The ``/3.0`` blueprint: Mailchimp Marketing API v3 as the official client sees it.

Routing, auth, the in-flight connection cap, ``fields``/``exclude_fields`` and the problem+json
error format live here; every rule about audiences, members, campaigns and batches lives in
:class:`~.state.MailchimpState`. Batch operations are dispatched back through this blueprint
(:func:`_batch_dispatcher`); their results are downloaded from
:func:`mailchimp_downloads_blueprint`, outside ``/3.0``.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.test import Client
from werkzeug.wsgi import ClosingIterator

from . import problems
from .problems import MailchimpProblem
from .state import MEMBER_STATUSES, BatchDispatch, BatchOperation, MailchimpState, parse_time

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ConnectionLimit",
    "mailchimp_blueprint",
    "mailchimp_downloads_blueprint",
    "mailchimp_error_body",
]

JSON_TYPE = "application/json; charset=utf-8"
PROBLEM_TYPE = "application/problem+json; charset=utf-8"
MAX_COUNT = 1000
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_CATCH_ALL = "catch_all"

Tree = dict[str, "Tree | None"]


# --------------------------------------------------------------------------- fields


def _tree(spec: str) -> Tree:
    """``"members.email_address,total_items"`` as a tree; ``None`` marks a whole subtree."""
    tree: Tree = {}
    for path in spec.split(","):
        parts = [p for p in path.strip().split(".") if p]
        if not parts:
            continue
        node: Tree | None = tree
        for part in parts[:-1]:
            assert node is not None
            if part in node and node[part] is None:
                node = None
                break
            node = node.setdefault(part, {})
        if node is not None:
            node[parts[-1]] = None
    return tree


def _include(value: Any, tree: Tree) -> Any:
    if isinstance(value, list):
        return [_include(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        if key in value:
            out[key] = value[key] if sub is None else _include(value[key], sub)
    return out


def _exclude(value: Any, tree: Tree) -> Any:
    if isinstance(value, list):
        return [_exclude(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for key, sub in tree.items():
        if key in out:
            if sub is None:
                del out[key]
            else:
                out[key] = _exclude(out[key], sub)
    return out


def project(data: dict[str, Any], fields: str | None, exclude_fields: str | None) -> Any:
    """Apply Mailchimp's ``fields`` and ``exclude_fields`` dot paths to a response body."""
    result: Any = data
    if fields:
        result = _include(result, _tree(fields))
    if exclude_fields:
        result = _exclude(result, _tree(exclude_fields))
    return result


def _member_keys(fields: str | None) -> frozenset[str] | None:
    """The top-level member keys a members-collection ``fields`` asks for (None: all)."""
    if not fields:
        return None
    tree = _tree(fields)
    if "members" not in tree:
        return frozenset()
    node = tree["members"]
    return None if node is None else frozenset(node)


# --------------------------------------------------------------------------- requests


def _credentials() -> tuple[str | None, bool]:
    """The key (or OAuth token) the request carries, and whether it came as Bearer."""
    return _environ_credentials(request.environ)


def _body() -> Any:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MailchimpProblem(
            400, "JSON Parse Exception", "We encountered an unspecified JSON parsing error."
        ) from None


def _arg_problem(name: str, message: str) -> MailchimpProblem:
    return problems.invalid_resource(errors=[{"field": name, "message": message}])


def _int_arg(name: str, default: int, *, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _arg_problem(name, "This value should be of type integer.") from None
    if value < 0:
        raise _arg_problem(name, "This value should be greater than or equal to 0.")
    if maximum is not None and value > maximum:
        raise _arg_problem(name, f"This value should be less than or equal to {maximum}.")
    return value


def _bool_arg(name: str) -> bool:
    return request.args.get(name, "").strip().lower() in ("true", "1", "yes")


def _time_arg(name: str) -> float | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise _arg_problem(name, "This value should be a valid ISO 8601 date and time.") from None


def _choice_arg(name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        message = "Data presented is not one of the accepted values: " + ", ".join(choices) + "."
        raise _arg_problem(name, message)
    return raw


def _base() -> str:
    return request.url_root.rstrip("/") + "/3.0"


# --------------------------------------------------------------------------- responses


def _json(data: dict[str, Any], status: int = 200) -> Response:
    body = project(data, request.args.get("fields"), request.args.get("exclude_fields"))
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status=status, content_type=JSON_TYPE)


def _no_content() -> Response:
    return Response(b"", status=204, content_type=JSON_TYPE)


def _problem(problem: MailchimpProblem) -> Response:
    instance = g.get("mc_request_id") or str(uuid.uuid4())
    text = json.dumps(problem.body(instance), ensure_ascii=False, separators=(",", ":"))
    response = Response(text, status=problem.status, content_type=PROBLEM_TYPE)
    response.headers["Link"] = (
        f"<{request.url_root.rstrip('/')}/schema/3.0/Definitions/ProblemDetailDocument.json>; "
        'rel="describedBy"'
    )
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def _method_not_allowed(allowed: list[str]) -> MailchimpProblem:
    return MailchimpProblem(
        405,
        "Method Not Allowed",
        "The requested method and resource are not compatible. See the Allow header for this "
        "resource's available methods.",
        headers={"Allow": ", ".join(allowed)},
    )


# --------------------------------------------------------------------------- blueprint


def mailchimp_blueprint(state: MailchimpState) -> Blueprint:
    """Mailchimp Marketing API v3 under ``/3.0``, backed by ``state``."""
    bp = Blueprint("mailchimp", __name__, url_prefix="/3.0")

    @bp.before_request
    def authenticate() -> None:
        g.mc_request_id = str(uuid.uuid4())
        key, bearer = _credentials()
        if key is None:
            raise MailchimpProblem(
                401, "API Key Missing", "Your request did not include an API key."
            )
        if not state.key_store.key_is_valid(key, bearer=bearer):
            raise MailchimpProblem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        if request.environ.get(_COUNTED) is None and not request.environ.get(_BATCH_OPERATION):
            if not state.key_store.enter_request(key):
                raise _too_many(state)
            g.mc_key = key

    @bp.teardown_request
    def leave(_exc: BaseException | None) -> None:
        key = g.pop("mc_key", None)
        if key is not None:
            state.key_store.leave_request(key)

    @bp.after_request
    def stamp(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("mc_request_id") or str(uuid.uuid4())
        state.webhook_store.flush_webhooks()
        return response

    @bp.errorhandler(MailchimpProblem)
    def on_problem(problem: MailchimpProblem) -> Response:
        return _problem(problem)

    @bp.errorhandler(HTTPException)
    def on_http(exc: HTTPException) -> Response:
        if isinstance(exc, NotFound):
            return _problem(problems.not_found())
        if isinstance(exc, MethodNotAllowed):
            return _problem(_method_not_allowed(list(exc.valid_methods or [])))
        code = exc.code or 500
        if code >= 500:
            return _problem(problems.internal_error())
        return _problem(MailchimpProblem(code, exc.name, exc.description or exc.name))

    def route(rule: str, methods: tuple[str, ...]) -> Callable[[Callable[..., Response]], Any]:
        return bp.route(rule, methods=list(methods))

    # ---- root, ping

    @route("/", ("GET",))
    def root() -> Response:
        return _json(
            {
                "account_id": "a1b2c3d4e5f6a7b8c9d0e1f2a",
                "login_id": "100000001",
                "account_name": "Digital Marketplace sandbox",
                "email": "sandbox@digitalmarketplace.service.gov.uk",
                "username": "sandbox",
                "role": "owner",
                "pricing_plan_type": "monthly",
                "total_subscribers": sum(
                    x["stats"]["member_count"] for x in state.list_store.lists()
                ),
                "_links": [{"rel": "self", "href": f"{_base()}/", "method": "GET"}],
            }
        )

    @route("/ping", ("GET",))
    def ping() -> Response:
        return _json({"health_status": "Everything's Chimpy!"})

    # ---- lists

    @route("/lists", ("GET", "POST"))
    def lists() -> Response:
        if request.method == "POST":
            return _json(state.list_store.api_create_list(_body(), _base()))
        return _json(
            state.list_store.get_lists(
                _base(),
                count=_int_arg("count", 10, maximum=MAX_COUNT),
                offset=_int_arg("offset", 0),
                email=request.args.get("email") or None,
                include_total_contacts=_bool_arg("include_total_contacts"),
            )
        )

    @route("/lists/<list_id>", ("GET", "POST", "PATCH", "DELETE"))
    def one_list(list_id: str) -> Response:
        if request.method == "POST":
            return _json(state.collection_store.batch_members(list_id, _body(), _base()))
        if request.method == "PATCH":
            return _json(state.list_store.update_list(list_id, _body(), _base()))
        if request.method == "DELETE":
            state.list_store.delete_list(list_id)
            return _no_content()
        return _json(
            state.list_store.get_list(
                list_id, _base(), include_total_contacts=_bool_arg("include_total_contacts")
            )
        )

    @route("/lists/<list_id>/members", ("GET", "POST"))
    def members(list_id: str) -> Response:
        if request.method == "POST":
            return _json(state.member_store.add_member(list_id, _body(), _base()))
        sort_dir = _choice_arg("sort_dir", ("ASC", "DESC")) or "ASC"
        return _json(
            state.collection_store.members_page(
                list_id,
                _base(),
                count=_int_arg("count", 10, maximum=MAX_COUNT),
                offset=_int_arg("offset", 0),
                status=_choice_arg("status", MEMBER_STATUSES),
                since_last_changed=_time_arg("since_last_changed"),
                before_last_changed=_time_arg("before_last_changed"),
                since_timestamp_opt=_time_arg("since_timestamp_opt"),
                before_timestamp_opt=_time_arg("before_timestamp_opt"),
                unique_email_id=request.args.get("unique_email_id") or None,
                vip_only=_bool_arg("vip_only"),
                sort_field=_choice_arg(
                    "sort_field", ("timestamp_opt", "timestamp_signup", "last_changed")
                ),
                sort_dir=sort_dir,
                member_keys=_member_keys(request.args.get("fields")),
            )
        )

    @route("/lists/<list_id>/members/<key>", ("GET", "PUT", "PATCH", "DELETE"))
    def member(list_id: str, key: str) -> Response:
        if request.method == "PUT":
            return _json(state.member_store.set_member(list_id, key, _body(), _base()))
        if request.method == "PATCH":
            return _json(state.member_store.update_member(list_id, key, _body(), _base()))
        if request.method == "DELETE":
            state.member_store.archive_member(list_id, key)
            return _no_content()
        return _json(state.member_store.get_member(list_id, key, _base()))

    @route("/lists/<list_id>/members/<key>/actions/delete-permanent", ("POST",))
    def delete_permanent(list_id: str, key: str) -> Response:
        state.member_store.delete_member_permanent(list_id, key)
        return _no_content()

    @route("/lists/<list_id>/members/<key>/tags", ("GET", "POST"))
    def member_tags(list_id: str, key: str) -> Response:
        if request.method == "POST":
            state.member_store.update_member_tags(list_id, key, _body())
            return _no_content()
        return _json(state.member_store.get_member_tags(list_id, key, _base()))

    @route("/lists/<list_id>/webhooks", ("GET", "POST"))
    def webhooks(list_id: str) -> Response:
        if request.method == "POST":
            return _json(state.webhook_store.create_webhook(list_id, _body(), _base()))
        return _json(state.webhook_store.get_webhooks(list_id, _base()))

    @route("/lists/<list_id>/webhooks/<webhook_id>", ("GET", "DELETE"))
    def webhook(list_id: str, webhook_id: str) -> Response:
        if request.method == "DELETE":
            state.webhook_store.delete_webhook(list_id, webhook_id)
            return _no_content()
        return _json(state.webhook_store.get_webhook(list_id, webhook_id, _base()))

    # ---- campaigns

    @route("/campaigns", ("GET", "POST"))
    def campaigns() -> Response:
        if request.method == "POST":
            return _json(state.campaign_store.create_campaign(_body(), _base()))
        return _json(
            state.campaign_store.list_campaigns(
                _base(),
                count=_int_arg("count", 10, maximum=MAX_COUNT),
                offset=_int_arg("offset", 0),
                status=request.args.get("status") or None,
                list_id=request.args.get("list_id") or None,
                type_=request.args.get("type") or None,
                sort_field=_choice_arg("sort_field", ("create_time", "send_time")),
                sort_dir=_choice_arg("sort_dir", ("ASC", "DESC")) or "ASC",
            )
        )

    @route("/campaigns/<campaign_id>", ("GET", "PATCH", "DELETE"))
    def campaign(campaign_id: str) -> Response:
        if request.method == "PATCH":
            return _json(state.campaign_store.update_campaign(campaign_id, _body(), _base()))
        if request.method == "DELETE":
            state.campaign_store.delete_campaign(campaign_id)
            return _no_content()
        return _json(state.campaign_store.get_campaign(campaign_id, _base()))

    @route("/campaigns/<campaign_id>/content", ("GET", "PUT"))
    def content(campaign_id: str) -> Response:
        if request.method == "PUT":
            return _json(state.campaign_store.set_content(campaign_id, _body(), _base()))
        return _json(state.campaign_store.get_content(campaign_id, _base()))

    @route("/campaigns/<campaign_id>/send-checklist", ("GET",))
    def send_checklist(campaign_id: str) -> Response:
        return _json(state.campaign_store.send_checklist(campaign_id, _base()))

    @route("/campaigns/<campaign_id>/actions/send", ("POST",))
    def send(campaign_id: str) -> Response:
        state.campaign_store.send_campaign(campaign_id)
        return _no_content()

    @route("/campaigns/<campaign_id>/actions/schedule", ("POST",))
    def schedule(campaign_id: str) -> Response:
        state.campaign_store.schedule_campaign(campaign_id, _body())
        return _no_content()

    @route("/campaigns/<campaign_id>/actions/unschedule", ("POST",))
    def unschedule(campaign_id: str) -> Response:
        state.campaign_store.unschedule_campaign(campaign_id)
        return _no_content()

    # ---- batches

    @route("/batches", ("GET", "POST"))
    def batches() -> Response:
        if request.method == "POST":
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            root = request.url_root.rstrip("/")
            dispatch = _batch_dispatcher(app, request.headers.get("Authorization", ""), root)
            return _json(
                state.batch_store.start_batch(_body(), _base(), root=root, dispatch=dispatch)
            )
        return _json(
            state.batch_store.get_batches(
                _base(),
                count=_int_arg("count", 10, maximum=MAX_COUNT),
                offset=_int_arg("offset", 0),
            )
        )

    @route("/batches/<batch_id>", ("GET", "DELETE"))
    def batch(batch_id: str) -> Response:
        if request.method == "DELETE":
            state.batch_store.delete_batch(batch_id)
            return _no_content()
        return _json(state.batch_store.get_batch(batch_id, _base()))

    @route("/batch-webhooks", ("GET", "POST"))
    def batch_webhooks() -> Response:
        if request.method == "POST":
            return _json(state.webhook_store.create_batch_webhook(_body(), _base()))
        return _json(state.webhook_store.get_batch_webhooks(_base()))

    @route("/batch-webhooks/<hook_id>", ("GET", "PATCH", "DELETE"))
    def batch_webhook(hook_id: str) -> Response:
        if request.method == "PATCH":
            return _json(state.webhook_store.update_batch_webhook(hook_id, _body(), _base()))
        if request.method == "DELETE":
            state.webhook_store.delete_batch_webhook(hook_id)
            return _no_content()
        return _json(state.webhook_store.get_batch_webhook(hook_id, _base()))

    # ---- everything else under /3.0: 405 for a known path, else 404

    @bp.route("/<path:rest>", methods=[*_METHODS, "OPTIONS", "HEAD"], endpoint=_CATCH_ALL)
    def catch_all(rest: str) -> Response:
        adapter = current_app.url_map.bind_to_environ(request.environ)
        allowed: list[str] = []
        for method in _METHODS:
            try:
                rule, _args = adapter.match(method=method, return_rule=True)
            except HTTPException:
                continue
            if not rule.endpoint.endswith("." + _CATCH_ALL):
                allowed.append(method)
        if allowed:
            raise _method_not_allowed(allowed)
        raise problems.not_found()

    return bp


# --------------------------------------------------------------------------- batches

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


def _batch_dispatcher(app: Flask, authorization: str, root: str) -> BatchDispatch:
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
                environ_overrides={_BATCH_OPERATION: True},
            )
        except Exception:
            text = json.dumps(
                problems.internal_error().body(str(uuid.uuid4())), separators=(",", ":")
            )
            return 500, text
        return response.status_code, response.get_data(as_text=True)

    return dispatch


# --------------------------------------------------------------------------- WSGI parts

_COUNTED = "dmmail.mailchimp.in_flight"
_BATCH_OPERATION = "dmmail.mailchimp.batch_operation"


def _environ_credentials(environ: WSGIEnvironment) -> tuple[str | None, bool]:
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    scheme = scheme.lower()
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "", False
        return (decoded.partition(":")[2] or None), False
    if scheme in ("bearer", "oauth") and value:
        return value, True
    if scheme == "apikey" and value:
        return value, False
    return None, False


def mailchimp_error_body() -> tuple[str, bytes]:
    """Mailchimp's 500 problem body, for the sandbox's fault layer (``/3.0`` prefix)."""
    text = json.dumps(problems.internal_error().body(str(uuid.uuid4())), separators=(",", ":"))
    return PROBLEM_TYPE, text.encode()


class ConnectionLimit:
    """WSGI middleware that counts ``/3.0`` requests in flight per key; 429 past the limit.

    Wrap it outermost (around the fault layer) so injected latency and stalls hold a
    connection open, as a slow Mailchimp does. Without it the blueprint counts by itself,
    from routing to teardown.
    """

    def __init__(self, app: WSGIApplication, state: MailchimpState, prefix: str = "/3.0") -> None:
        self.app = app
        self.state = state
        self.prefix = prefix

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            return self.app(environ, start_response)
        key, bearer = _environ_credentials(environ)
        if not key or not self.state.key_store.key_is_valid(key, bearer=bearer):
            return self.app(environ, start_response)  # the blueprint answers 401
        if not self.state.key_store.enter_request(key):
            problem = _too_many(self.state)
            instance = str(uuid.uuid4())
            response = Response(
                json.dumps(problem.body(instance), separators=(",", ":")),
                status=429,
                content_type=PROBLEM_TYPE,
                headers={"X-Request-Id": instance},
            )
            return response(environ, start_response)
        environ[_COUNTED] = key
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self.state.key_store.leave_request(key)
            raise
        return ClosingIterator(result, [lambda: self.state.key_store.leave_request(key)])


def _too_many(state: MailchimpState) -> MailchimpProblem:
    return MailchimpProblem(
        429,
        "Too Many Requests",
        f"You have exceeded the limit of {state.connection_limit} simultaneous connections.",
    )
