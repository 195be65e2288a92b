"""The ``/3.0`` blueprint: Mailchimp Marketing API v3 as the official client sees it.

Routing, auth, the in-flight connection cap and the problem+json error format live here; every
rule about audiences, members, campaigns and batches lives in the stores of
:class:`~.state.MailchimpState`, which the routes call. Reading requests and writing answers is
in :mod:`.web` (``fields``/``exclude_fields`` in :mod:`.fields`); batch operations are
dispatched back through this blueprint by :func:`.batch_api.batch_dispatcher`, and their
results are downloaded from :func:`.batch_api.mailchimp_downloads_blueprint`, outside ``/3.0``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from . import problems
from .batch_api import batch_dispatcher, mailchimp_downloads_blueprint
from .fields import member_keys
from .models import MEMBER_STATUSES
from .problems import MailchimpProblem
from .search import search_members
from .state import MailchimpState
from .web import (
    MAX_COUNT,
    api_base,
    bool_arg,
    choice_arg,
    credentials,
    int_arg,
    json_response,
    method_not_allowed,
    no_content,
    problem_response,
    request_body,
    time_arg,
)
from .wsgi import (
    BATCH_OPERATION,
    COUNTED,
    DATACENTER,
    ConnectionLimit,
    mailchimp_error_body,
    too_many,
)

__all__ = [
    "ConnectionLimit",
    "mailchimp_blueprint",
    "mailchimp_downloads_blueprint",
    "mailchimp_error_body",
]

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_CATCH_ALL = "catch_all"


# --------------------------------------------------------------------------- blueprint


def _skip_merge() -> bool:
    """The ``skip_merge_validation`` query argument: required merge fields may be left out."""
    return bool_arg("skip_merge_validation")


def mailchimp_blueprint(state: MailchimpState) -> Blueprint:
    """Mailchimp Marketing API v3 under ``/3.0``, backed by ``state``."""
    bp = Blueprint("mailchimp", __name__, url_prefix="/3.0")

    @bp.before_request
    def authenticate() -> None:
        g.mc_request_id = str(uuid.uuid4())
        key, bearer = credentials()
        if key is None:
            raise MailchimpProblem(
                401, "API Key Missing", "Your request did not include an API key."
            )
        datacenter = request.environ.get(DATACENTER)
        key_dc = state.datacenter if bearer else key.rpartition("-")[2]
        if not state.key_store.key_is_valid(key, bearer=bearer) or (
            datacenter is not None and datacenter != key_dc
        ):
            raise MailchimpProblem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        if request.environ.get(COUNTED) is None and not request.environ.get(BATCH_OPERATION):
            if not state.key_store.enter_request(key):
                raise too_many(state)
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
        return problem_response(problem)

    @bp.errorhandler(HTTPException)
    def on_http(exc: HTTPException) -> Response:
        if isinstance(exc, NotFound):
            return problem_response(problems.not_found())
        if isinstance(exc, MethodNotAllowed):
            return problem_response(method_not_allowed(list(exc.valid_methods or [])))
        code = exc.code or 500
        if code >= 500:
            return problem_response(problems.internal_error())
        return problem_response(MailchimpProblem(code, exc.name, exc.description or exc.name))

    def route(rule: str, methods: tuple[str, ...]) -> Callable[[Callable[..., Response]], Any]:
        return bp.route(rule, methods=list(methods))

    # ---- root, ping

    @route("/", ("GET",))
    def root() -> Response:
        return json_response(
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
                "_links": [{"rel": "self", "href": f"{api_base()}/", "method": "GET"}],
            }
        )

    @route("/ping", ("GET",))
    def ping() -> Response:
        return json_response({"health_status": "Everything's Chimpy!"})

    # ---- lists

    @route("/lists", ("GET", "POST"))
    def lists() -> Response:
        if request.method == "POST":
            return json_response(state.list_store.api_create_list(request_body(), api_base()))
        return json_response(
            state.list_store.get_lists(
                api_base(),
                count=int_arg("count", 10, maximum=MAX_COUNT),
                offset=int_arg("offset", 0),
                email=request.args.get("email") or None,
                include_total_contacts=bool_arg("include_total_contacts"),
            )
        )

    @route("/lists/<list_id>", ("GET", "POST", "PATCH", "DELETE"))
    def one_list(list_id: str) -> Response:
        if request.method == "POST":
            return json_response(
                state.collection_store.batch_members(
                    list_id, request_body(), api_base(), skip_merge=_skip_merge()
                )
            )
        if request.method == "PATCH":
            return json_response(state.list_store.update_list(list_id, request_body(), api_base()))
        if request.method == "DELETE":
            state.list_store.delete_list(list_id)
            return no_content()
        return json_response(
            state.list_store.get_list(
                list_id, api_base(), include_total_contacts=bool_arg("include_total_contacts")
            )
        )

    @route("/lists/<list_id>/members", ("GET", "POST"))
    def members(list_id: str) -> Response:
        if request.method == "POST":
            return json_response(
                state.member_store.add_member(
                    list_id, request_body(), api_base(), skip_merge=_skip_merge()
                )
            )
        sort_dir = choice_arg("sort_dir", ("ASC", "DESC")) or "ASC"
        return json_response(
            state.collection_store.members_page(
                list_id,
                api_base(),
                count=int_arg("count", 10, maximum=MAX_COUNT),
                offset=int_arg("offset", 0),
                status=choice_arg("status", MEMBER_STATUSES),
                since_last_changed=time_arg("since_last_changed"),
                before_last_changed=time_arg("before_last_changed"),
                since_timestamp_opt=time_arg("since_timestamp_opt"),
                before_timestamp_opt=time_arg("before_timestamp_opt"),
                unique_email_id=request.args.get("unique_email_id") or None,
                vip_only=bool_arg("vip_only"),
                sort_field=choice_arg(
                    "sort_field", ("timestamp_opt", "timestamp_signup", "last_changed")
                ),
                sort_dir=sort_dir,
                member_keys=member_keys(request.args.get("fields")),
            )
        )

    @route("/lists/<list_id>/members/<key>", ("GET", "PUT", "PATCH", "DELETE"))
    def member(list_id: str, key: str) -> Response:
        if request.method == "PUT":
            return json_response(
                state.member_store.set_member(
                    list_id, key, request_body(), api_base(), skip_merge=_skip_merge()
                )
            )
        if request.method == "PATCH":
            return json_response(
                state.member_store.update_member(
                    list_id, key, request_body(), api_base(), skip_merge=_skip_merge()
                )
            )
        if request.method == "DELETE":
            state.member_store.archive_member(list_id, key)
            return no_content()
        return json_response(state.member_store.get_member(list_id, key, api_base()))

    @route("/lists/<list_id>/members/<key>/actions/delete-permanent", ("POST",))
    def delete_permanent(list_id: str, key: str) -> Response:
        state.member_store.delete_member_permanent(list_id, key)
        return no_content()

    @route("/lists/<list_id>/members/<key>/tags", ("GET", "POST"))
    def member_tags(list_id: str, key: str) -> Response:
        if request.method == "POST":
            state.member_store.update_member_tags(list_id, key, request_body())
            return no_content()
        return json_response(state.member_store.get_member_tags(list_id, key, api_base()))

    @route("/lists/<list_id>/merge-fields", ("GET", "POST"))
    def merge_fields(list_id: str) -> Response:
        store = state.merge_field_store
        if request.method == "POST":
            return json_response(store.create_field(list_id, request_body(), api_base()))
        required = request.args.get("required")
        return json_response(
            store.list_fields(
                list_id,
                api_base(),
                count=int_arg("count", 10, maximum=MAX_COUNT),
                offset=int_arg("offset", 0),
                type_=request.args.get("type") or None,
                required=None if not required else bool_arg("required"),
            )
        )

    @route("/lists/<list_id>/merge-fields/<merge_id>", ("GET", "PATCH", "DELETE"))
    def merge_field(list_id: str, merge_id: str) -> Response:
        store = state.merge_field_store
        if request.method == "PATCH":
            return json_response(store.update_field(list_id, merge_id, request_body(), api_base()))
        if request.method == "DELETE":
            store.delete_field(list_id, merge_id)
            return no_content()
        return json_response(store.get_field(list_id, merge_id, api_base()))

    @route("/search-members", ("GET",))
    def search() -> Response:
        return json_response(
            search_members(
                state,
                request.args.get("query"),
                request.args.get("list_id") or None,
                api_base(),
            )
        )

    @route("/verified-domains", ("GET", "POST"))
    def verified_domains() -> Response:
        if request.method == "POST":
            return json_response(state.domain_store.add_domain(request_body(), api_base()))
        return json_response(state.domain_store.list_domains(api_base()))

    @route("/verified-domains/<domain>", ("GET", "DELETE"))
    def verified_domain(domain: str) -> Response:
        if request.method == "DELETE":
            state.domain_store.delete_domain(domain)
            return no_content()
        return json_response(state.domain_store.get_domain(domain, api_base()))

    @route("/verified-domains/<domain>/actions/verify", ("POST",))
    def verify_domain(domain: str) -> Response:
        return json_response(state.domain_store.submit_code(domain, request_body(), api_base()))

    @route("/lists/<list_id>/webhooks", ("GET", "POST"))
    def webhooks(list_id: str) -> Response:
        if request.method == "POST":
            return json_response(
                state.webhook_store.create_webhook(list_id, request_body(), api_base())
            )
        return json_response(state.webhook_store.get_webhooks(list_id, api_base()))

    @route("/lists/<list_id>/webhooks/<webhook_id>", ("GET", "DELETE"))
    def webhook(list_id: str, webhook_id: str) -> Response:
        if request.method == "DELETE":
            state.webhook_store.delete_webhook(list_id, webhook_id)
            return no_content()
        return json_response(state.webhook_store.get_webhook(list_id, webhook_id, api_base()))

    # ---- campaigns

    @route("/campaigns", ("GET", "POST"))
    def campaigns() -> Response:
        if request.method == "POST":
            return json_response(state.campaign_store.create_campaign(request_body(), api_base()))
        return json_response(
            state.campaign_store.list_campaigns(
                api_base(),
                count=int_arg("count", 10, maximum=MAX_COUNT),
                offset=int_arg("offset", 0),
                status=request.args.get("status") or None,
                list_id=request.args.get("list_id") or None,
                type_=request.args.get("type") or None,
                sort_field=choice_arg("sort_field", ("create_time", "send_time")),
                sort_dir=choice_arg("sort_dir", ("ASC", "DESC")) or "ASC",
            )
        )

    @route("/campaigns/<campaign_id>", ("GET", "PATCH", "DELETE"))
    def campaign(campaign_id: str) -> Response:
        if request.method == "PATCH":
            return json_response(
                state.campaign_store.update_campaign(campaign_id, request_body(), api_base())
            )
        if request.method == "DELETE":
            state.campaign_store.delete_campaign(campaign_id)
            return no_content()
        return json_response(state.campaign_store.get_campaign(campaign_id, api_base()))

    @route("/campaigns/<campaign_id>/content", ("GET", "PUT"))
    def content(campaign_id: str) -> Response:
        if request.method == "PUT":
            return json_response(
                state.campaign_store.set_content(campaign_id, request_body(), api_base())
            )
        return json_response(state.campaign_store.get_content(campaign_id, api_base()))

    @route("/campaigns/<campaign_id>/send-checklist", ("GET",))
    def send_checklist(campaign_id: str) -> Response:
        return json_response(state.campaign_store.send_checklist(campaign_id, api_base()))

    @route("/campaigns/<campaign_id>/actions/send", ("POST",))
    def send(campaign_id: str) -> Response:
        state.campaign_store.send_campaign(campaign_id)
        return no_content()

    @route("/campaigns/<campaign_id>/actions/schedule", ("POST",))
    def schedule(campaign_id: str) -> Response:
        state.campaign_store.schedule_campaign(campaign_id, request_body())
        return no_content()

    @route("/campaigns/<campaign_id>/actions/unschedule", ("POST",))
    def unschedule(campaign_id: str) -> Response:
        state.campaign_store.unschedule_campaign(campaign_id)
        return no_content()

    # ---- batches

    @route("/batches", ("GET", "POST"))
    def batches() -> Response:
        if request.method == "POST":
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            root = request.url_root.rstrip("/")
            dispatch = batch_dispatcher(app, request.headers.get("Authorization", ""), root)
            return json_response(
                state.batch_store.start_batch(
                    request_body(), api_base(), root=root, dispatch=dispatch
                )
            )
        return json_response(
            state.batch_store.get_batches(
                api_base(),
                count=int_arg("count", 10, maximum=MAX_COUNT),
                offset=int_arg("offset", 0),
            )
        )

    @route("/batches/<batch_id>", ("GET", "DELETE"))
    def batch(batch_id: str) -> Response:
        if request.method == "DELETE":
            state.batch_store.delete_batch(batch_id)
            return no_content()
        return json_response(state.batch_store.get_batch(batch_id, api_base()))

    @route("/batch-webhooks", ("GET", "POST"))
    def batch_webhooks() -> Response:
        if request.method == "POST":
            return json_response(
                state.webhook_store.create_batch_webhook(request_body(), api_base())
            )
        return json_response(state.webhook_store.get_batch_webhooks(api_base()))

    @route("/batch-webhooks/<hook_id>", ("GET", "PATCH", "DELETE"))
    def batch_webhook(hook_id: str) -> Response:
        if request.method == "PATCH":
            return json_response(
                state.webhook_store.update_batch_webhook(hook_id, request_body(), api_base())
            )
        if request.method == "DELETE":
            state.webhook_store.delete_batch_webhook(hook_id)
            return no_content()
        return json_response(state.webhook_store.get_batch_webhook(hook_id, api_base()))

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
            raise method_not_allowed(allowed)
        raise problems.not_found()

    return bp
