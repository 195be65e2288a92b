"""The account's audiences (the API's "lists"): creating them (with and without HTTP and the
plan's cap), their settings, reading, paging and deleting them.

:class:`ListStore` owns the audience records; the member, webhook and campaign stores find an
audience through :meth:`ListStore.record` (404 when missing) or :meth:`ListStore.find`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import problems
from .merge_fields import DEFAULT_FIELDS, default_merge_fields
from .models import ListRecord, new_id, new_web_id, subscriber_hash
from .problems import MailchimpProblem
from .serialise import collection_links, list_json

if TYPE_CHECKING:
    from .state import MailchimpState

__all__ = ["ListStore"]


class ListStore:
    """The account's audiences; shares the state's lock.

    :param state: the :class:`~flask_dmmail.sandbox.mailchimp.MailchimpState` it belongs to
        (its lock, clock, plan cap and the other stores).
    """

    def __init__(self, state: MailchimpState) -> None:
        self._state = state
        self._lock = state.lock
        self.reset()

    def reset(self) -> None:
        """No audiences."""
        with self._lock:
            self._lists: dict[str, ListRecord] = {}

    def record(self, list_id: str) -> ListRecord:
        """The audience ``list_id``; the API's 404 problem if there is none."""
        lst = self._lists.get(list_id)
        if lst is None:
            raise problems.not_found()
        return lst

    def find(self, list_id: str) -> ListRecord | None:
        """The audience ``list_id``, or None."""
        return self._lists.get(list_id)

    def records(self) -> list[ListRecord]:
        """Every audience's record, oldest first."""
        return list(self._lists.values())

    def create_list(
        self,
        name: str,
        *,
        list_id: str | None = None,
        contact: Mapping[str, Any] | None = None,
        permission_reminder: str = "You signed up for updates from the Digital Marketplace.",
        campaign_defaults: Mapping[str, Any] | None = None,
        email_type_option: bool = False,
        **settings: Any,
    ) -> str:
        """Create an audience without HTTP (no plan cap); returns its id.

        ``list_id`` may be chosen by the caller (the extension pre-creates configured
        audiences); it must not contain "server", which the official client rewrites.
        """
        with self._lock:
            if list_id is not None:
                if "server" in list_id or "/" in list_id or not list_id:
                    raise ValueError(f"unusable list id {list_id!r}")
                if list_id in self._lists:
                    raise ValueError(f"list {list_id!r} already exists")
            lst = ListRecord(
                id=list_id or self._unused_list_id(),
                web_id=new_web_id(),
                name=name,
                created=self._state.clock(),
                settings={
                    "contact": {
                        "company": "Crown Commercial Service",
                        "address1": "The Capital",
                        "address2": "",
                        "city": "Liverpool",
                        "state": "",
                        "zip": "L3 9PP",
                        "country": "GB",
                        "phone": "",
                        **(contact or {}),
                    },
                    "permission_reminder": permission_reminder,
                    "campaign_defaults": {
                        "from_name": "Digital Marketplace",
                        "from_email": "enquiries@digitalmarketplace.service.gov.uk",
                        "subject": "",
                        "language": "en",
                        **(campaign_defaults or {}),
                    },
                    "email_type_option": email_type_option,
                    "use_archive_bar": True,
                    "notify_on_subscribe": "",
                    "notify_on_unsubscribe": "",
                    "double_optin": False,
                    "marketing_permissions": False,
                    "visibility": "pub",
                    **settings,
                },
                merge_fields=default_merge_fields(),
                merge_seq=len(DEFAULT_FIELDS),
            )
            self._lists[lst.id] = lst
            return lst.id

    def ensure_list(self, list_id: str | None, name: str, **fields: Any) -> str:
        """Create the audience ``list_id`` unless it exists; returns its id."""
        with self._lock:
            if list_id is not None and list_id in self._lists:
                return list_id
            return self.create_list(name, list_id=list_id, **fields)

    def _unused_list_id(self) -> str:
        while True:
            candidate = new_id()
            if candidate not in self._lists:
                return candidate

    def api_create_list(self, body: Any, base: str) -> dict[str, Any]:
        """POST /lists: validate like Mailchimp, then create."""
        body = problems.require_object(body)
        missing = [
            k
            for k in (
                "name",
                "contact",
                "permission_reminder",
                "campaign_defaults",
                "email_type_option",
            )
            if k not in body
        ]
        if missing:
            raise problems.required_fields(*missing)
        errors: list[dict[str, str]] = []
        for key, kind in (("name", str), ("permission_reminder", str)):
            if not isinstance(body[key], kind):
                errors.append(problems.schema_error(key, "string", body[key]))
        if not isinstance(body["email_type_option"], bool):
            errors.append(
                problems.schema_error("email_type_option", "boolean", body["email_type_option"])
            )
        for key, required in (
            ("contact", ("company", "address1", "city", "country")),
            ("campaign_defaults", ("from_name", "from_email", "subject", "language")),
        ):
            value = body[key]
            if not isinstance(value, dict):
                errors.append(problems.schema_error(key, "object", value))
                continue
            absent = [r for r in required if r not in value]
            if absent:
                message = "Required fields were not provided: " + ", ".join(absent)
                errors.append({"field": key, "message": message})
            for sub, subvalue in value.items():
                if not isinstance(subvalue, str):
                    errors.append(problems.schema_error(f"{key}.{sub}", "string", subvalue))
        if errors:
            raise problems.invalid_resource(errors=errors)
        if body["name"].strip() == "":
            raise problems.invalid_resource(
                errors=[{"field": "name", "message": "This value should not be blank."}]
            )
        with self._lock:
            if len(self._lists) >= self._state.max_lists:
                raise MailchimpProblem(
                    403,
                    "User Action Not Allowed",
                    "You have reached the maximum number of audiences allowed on your plan.",
                )
            extra = {
                k: v
                for k, v in body.items()
                if k
                in (
                    "use_archive_bar",
                    "notify_on_subscribe",
                    "notify_on_unsubscribe",
                    "double_optin",
                    "marketing_permissions",
                    "visibility",
                )
            }
            list_id = self.create_list(
                body["name"],
                contact=body["contact"],
                permission_reminder=body["permission_reminder"],
                campaign_defaults=body["campaign_defaults"],
                email_type_option=body["email_type_option"],
                **extra,
            )
            return list_json(self._lists[list_id], base, include_total=False)

    def get_list(
        self, list_id: str, base: str, *, include_total_contacts: bool = False
    ) -> dict[str, Any]:
        """GET /lists/{id}."""
        with self._lock:
            return list_json(self.record(list_id), base, include_total=include_total_contacts)

    def get_lists(
        self,
        base: str,
        *,
        count: int = 10,
        offset: int = 0,
        email: str | None = None,
        include_total_contacts: bool = False,
    ) -> dict[str, Any]:
        """GET /lists: a page of audiences (those ``email`` is a member of, if given)."""
        with self._lock:
            lists = list(self._lists.values())
            if email is not None:
                key = subscriber_hash(email)
                lists = [lst for lst in lists if key in lst.members]
            page = lists[offset : offset + count]
            return {
                "lists": [list_json(x, base, include_total=include_total_contacts) for x in page],
                "total_items": len(lists),
                "constraints": {
                    "may_create": len(self._lists) < self._state.max_lists,
                    "max_instances": self._state.max_lists,
                    "current_total_instances": len(self._lists),
                },
                "_links": collection_links(f"{base}/lists"),
            }

    def delete_list(self, list_id: str) -> None:
        """DELETE /lists/{id}."""
        with self._lock:
            self.record(list_id)
            del self._lists[list_id]

    def update_list(self, list_id: str, body: Any, base: str) -> dict[str, Any]:
        """PATCH /lists/{id}: the name and settings given."""
        body = problems.require_object(body)
        with self._lock:
            lst = self.record(list_id)
            if "name" in body:
                lst.name = str(body["name"])
            for key, value in body.items():
                if key in ("contact", "campaign_defaults") and isinstance(value, dict):
                    lst.settings[key].update(value)
                elif key != "name":
                    lst.settings[key] = value
            return list_json(lst, base, include_total=False)

    def lists(self) -> list[dict[str, Any]]:
        """Every audience as the API shows it (with ``stats.total_contacts``)."""
        with self._lock:
            return [list_json(lst, "", include_total=True) for lst in self._lists.values()]
