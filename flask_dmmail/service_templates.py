"""The service's templates, read from Notify: what ``flask dmmail templates pull`` writes
and what ``flask dmmail templates check`` checks.

:class:`TemplatesReader` reads them through the official client (``GET /v2/templates?type=email``
and ``GET /v2/template/{id}``, which any key of the service may call, a test key included);
:func:`check_templates` checks the app's ``DM_NOTIFY_TEMPLATES`` against them, one
:class:`TemplateCheck` per name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notifications_python_client.errors import APIError, InvalidResponse
from notifications_python_client.notifications import NotificationsAPIClient

from .deadline import DeadlineSession
from .errors import ConfigurationError, NotifyProtocolError, TemplateNotFoundError
from .notify import map_error
from .templates_file import PULL_COMMAND, PulledTemplate

__all__ = ["ServiceTemplate", "TemplateCheck", "TemplatesReader", "check_templates"]


@dataclass(frozen=True)
class ServiceTemplate:
    """A template of the service as Notify's API gives it (any type)."""

    id: str
    type: str
    name: str
    subject: str | None
    body: str
    version: int

    @classmethod
    def from_json(cls, data: Any) -> ServiceTemplate:
        """Read one template of Notify's answer; NotifyProtocolError if it is not one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise NotifyProtocolError(
                "Notify answered with a template that has no id; check DM_NOTIFY_BASE_URL "
                "points at Notify's API."
            )
        version = data.get("version")
        return cls(
            id=data["id"],
            type=str(data.get("type") or ""),
            name=str(data.get("name") or ""),
            subject=data.get("subject") if isinstance(data.get("subject"), str) else None,
            body=str(data.get("body") or ""),
            version=version if isinstance(version, int) and not isinstance(version, bool) else 1,
        )

    def pulled(self) -> PulledTemplate:
        """The template as the pulled file keeps it."""
        return PulledTemplate(self.id, self.name, self.subject or "", self.body, self.version)


class TemplatesReader:
    """Reads a Notify service's templates with one key (errors as in
    :func:`~flask_dmmail.notify.map_error`).

    :param api_key: the service's key (a test key can read templates).
    :param base_url: Notify's API (``DM_NOTIFY_BASE_URL``).
    :param timeout: seconds each request may take, in all.
    """

    def __init__(self, api_key: str, base_url: str, timeout: float) -> None:
        try:
            self._client = NotificationsAPIClient(api_key, base_url=base_url, timeout=timeout)
        except AssertionError:
            raise ConfigurationError(
                "DM_NOTIFY_KEY", "the Notify client could not read the key's service id and secret."
            ) from None
        self._client.request_session = DeadlineSession()

    def __repr__(self) -> str:
        return f"TemplatesReader(base_url={self._client.base_url!r})"

    def email_templates(self) -> list[ServiceTemplate]:
        """Every email template of the service that is not archived."""
        try:
            data = self._client.get_all_templates("email")
        except (APIError, InvalidResponse) as error:
            raise map_error(error) from None
        items = data.get("templates") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise NotifyProtocolError(
                "Notify's list of templates has no 'templates'; check DM_NOTIFY_BASE_URL."
            )
        return [ServiceTemplate.from_json(item) for item in items]

    def template(self, template_id: str) -> ServiceTemplate | None:
        """The template with this id (archived ones too, of any type), or None if the
        service has none."""
        try:
            data = self._client.get_template(template_id)
        except (APIError, InvalidResponse) as error:
            mapped = map_error(error, template=True)
            if isinstance(mapped, TemplateNotFoundError):
                return None
            raise mapped from None
        return ServiceTemplate.from_json(data)


_KINDS = {"sms": "a text message (sms)", "letter": "a letter"}


@dataclass(frozen=True)
class TemplateCheck:
    """The check of one ``DM_NOTIFY_TEMPLATES`` name: ``problem`` is None when it passed."""

    name: str
    template_id: str
    problem: str | None = None
    version: int | None = None

    @property
    def ok(self) -> bool:
        """True when the template passed."""
        return self.problem is None

    def line(self) -> str:
        """One line for the command's output (no key, address or personalisation)."""
        if self.problem is None:
            return f"ok      {self.name} ({self.template_id}): version {self.version}"
        return f"FAILED  {self.name} ({self.template_id}): {self.problem}"


def _compare(
    name: str, found: ServiceTemplate, pulled: Mapping[str, PulledTemplate], file_label: str
) -> TemplateCheck:
    copy = pulled.get(found.id)
    if copy is None:
        problem = f"not in {file_label}: run `{PULL_COMMAND}` and commit the file"
        return TemplateCheck(name, found.id, problem)
    differ = [
        what
        for what, mine, theirs in (
            ("subject", copy.subject, found.subject or ""),
            ("body", copy.body, found.body),
        )
        if mine != theirs
    ]
    if differ:
        verb = "differ" if len(differ) > 1 else "differs"
        problem = (
            f"the {' and '.join(differ)} in {file_label} (version {copy.version}) {verb} from "
            f"Notify's (version {found.version}): run `{PULL_COMMAND}` and commit the file"
        )
        return TemplateCheck(name, found.id, problem)
    return TemplateCheck(name, found.id, version=found.version)


def check_templates(
    reader: TemplatesReader,
    templates: Mapping[str, str],
    pulled: Mapping[str, PulledTemplate] | None = None,
    file_label: str = "the pulled file",
) -> list[TemplateCheck]:
    """Check every name of ``templates`` (``DM_NOTIFY_TEMPLATES``), sorted by name: its id
    exists in the key's service, is an email template and is not archived, and (with
    ``pulled``, the pulled file's templates by id) its subject and body are the file's.

    Raises a :class:`~flask_dmmail.errors.NotifyError` when Notify cannot be read (a bad
    key, Notify down): then no template can be checked.
    """
    listed = {t.id: t for t in reader.email_templates()}
    results: list[TemplateCheck] = []
    for name, template_id in sorted(templates.items()):
        found = listed.get(template_id)
        if found is not None:
            if pulled is None:
                results.append(TemplateCheck(name, template_id, version=found.version))
            else:
                results.append(_compare(name, found, pulled, file_label))
            continue
        other = reader.template(template_id)
        if other is None:
            problem = "not found in the Notify service of this key"
        elif other.type != "email":
            kind = _KINDS.get(other.type, f"a {other.type}")
            problem = f"is {kind} template, not an email template"
        else:
            problem = "is archived (deleted) in Notify: restore it or use another template"
        results.append(TemplateCheck(name, template_id, problem))
    return results
