"""The templates of sandbox mode: the file ``flask dmmail templates pull`` writes, and the seed
the embedded sandbox starts with.

In sandbox mode the embedded sandbox knows exactly these templates, and answers any other id
as Notify does ("Template not found", :class:`~flask_dmmail.errors.TemplateNotFoundError`):

1. the service's email templates pulled into ``notify_templates.json`` in the app's root
   folder (``app.root_path``), when that file exists (:func:`read_templates_file`);
2. the templates of ``DM_NOTIFY_SANDBOX_TEMPLATES`` (a seed file's path or a mapping), which
   win over the pulled file for a template id in both (with its reply-to addresses, team
   members, guest list and Mailchimp part);
3. a *stand-in* for each ``DM_NOTIFY_TEMPLATES`` id neither of those has: a template whose
   name ends in "(stand-in template)" and whose body says so. It has no placeholders, so
   any personalisation goes through (Notify ignores extra personalisation); the outbox marks
   its emails "stand-in template" and lists their personalisation.

:func:`embedded_seed` builds that seed; :func:`log_stand_ins` logs once which names are
stand-ins and the command that pulls the real ones.

The file holds, for every email template of the service that is not archived, its ``id``,
``name``, ``subject``, ``body`` and ``version``, as ``{"templates": [...]}`` sorted by id,
with sorted keys, two-space indents and a final newline, so it diffs well in git. It holds no
key, address or personalisation: commit it beside the app. It is also a seed file (the
sandbox's own format), so ``python -m flask_dmmail.sandbox --seed notify_templates.json``
serves the same templates.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from flask import Flask

from .config import Settings
from .errors import ConfigurationError, TemplatesFileError
from .replyto import add_reply_to_seed

__all__ = [
    "DEFAULT_FILENAME",
    "PULL_COMMAND",
    "STAND_IN_SUFFIX",
    "EmbeddedSeed",
    "PulledTemplate",
    "default_path",
    "dumps_templates",
    "embedded_seed",
    "is_stand_in",
    "log_stand_ins",
    "read_templates_file",
    "write_templates_file",
]

logger = logging.getLogger("flask_dmmail")

#: The pulled file's name, in the app's root folder (``app.root_path``).
DEFAULT_FILENAME = "notify_templates.json"
#: The command that writes it.
PULL_COMMAND = "flask dmmail templates pull"
#: How a stand-in template's name ends (the outbox marks its emails by it).
STAND_IN_SUFFIX = " (stand-in template)"

_SEED_KEY = "DM_NOTIFY_SANDBOX_TEMPLATES"


@dataclass(frozen=True)
class PulledTemplate:
    """One email template of the service, as the pulled file keeps it."""

    id: str
    name: str
    subject: str
    body: str
    version: int

    def to_json(self) -> dict[str, Any]:
        """The template as the file writes it."""
        return {
            "id": self.id,
            "name": self.name,
            "subject": self.subject,
            "body": self.body,
            "version": self.version,
        }


def default_path(app: Flask) -> Path:
    """Where the pulled file is by default: ``notify_templates.json`` in ``app.root_path``."""
    return Path(app.root_path) / DEFAULT_FILENAME


def dumps_templates(templates: Iterable[PulledTemplate]) -> str:
    """The file's text: deterministic (sorted by id, sorted keys), ending in a newline."""
    document = {"templates": [t.to_json() for t in sorted(templates, key=lambda t: t.id)]}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_templates_file(path: str | os.PathLike[str], templates: Iterable[PulledTemplate]) -> Path:
    """Write ``templates`` to ``path`` (replacing it whole, never half-written); the path.

    Raises :class:`~flask_dmmail.errors.TemplatesFileError` when it cannot be written.
    """
    target = Path(path)
    text = dumps_templates(templates)
    if target.is_dir():
        raise TemplatesFileError(f"{target} is a folder: give the path of a file to write.")
    if not target.parent.is_dir():
        raise TemplatesFileError(
            f"The folder {target.parent} does not exist: create it or give another --output."
        )
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise TemplatesFileError(
            f"Cannot write {target}: {error.strerror or error}. Give a path you may write to."
        ) from None
    return target


def _bad_file(path: Path, problem: str) -> TemplatesFileError:
    return TemplatesFileError(
        f"{path} {problem}. It is written by `{PULL_COMMAND}`: pull it again (or delete it "
        "to use stand-in templates)."
    )


def read_templates_file(path: str | os.PathLike[str]) -> list[PulledTemplate]:
    """The templates of a pulled file, checked.

    Raises :class:`~flask_dmmail.errors.TemplatesFileError` naming the file and what is
    wrong when it cannot be read or is not in the pulled file's shape.
    """
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplatesFileError(
            f"{source} does not exist. Write it with `{PULL_COMMAND}`."
        ) from None
    except OSError as error:
        raise TemplatesFileError(f"Cannot read {source}: {error.strerror or error}.") from None
    except UnicodeDecodeError:
        raise _bad_file(source, "is not UTF-8 text") from None
    except ValueError as error:
        raise _bad_file(
            source, f"is not valid JSON (line {getattr(error, 'lineno', '?')})"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("templates"), list):
        raise _bad_file(source, 'is not an object with a "templates" list')
    templates: list[PulledTemplate] = []
    for position, item in enumerate(document["templates"], start=1):
        where = f"has a bad template (number {position}):"
        if not isinstance(item, dict):
            raise _bad_file(source, f"{where} not an object")
        try:
            template_id = str(uuid.UUID(str(item.get("id"))))
        except ValueError:
            raise _bad_file(source, f"{where} its id is not a UUID") from None
        for field in ("name", "subject", "body"):
            if not isinstance(item.get(field), str):
                raise _bad_file(source, f"{where} its {field} is not a string")
        version = item.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise _bad_file(source, f"{where} its version is not a whole number")
        if item.get("type", "email") != "email":
            raise _bad_file(source, f"{where} it is not an email template")
        templates.append(
            PulledTemplate(template_id, item["name"], item["subject"], item["body"], version)
        )
    return templates


# -- the embedded sandbox's seed ------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedSeed:
    """What the embedded sandbox of an app starts with.

    :param seed: the seed to pass as ``Sandbox.start(seed=...)`` (with ``auto_templates``
        off): the pulled file's templates, ``DM_NOTIFY_SANDBOX_TEMPLATES`` over them, and
        the stand-ins.
    :param stand_ins: the ``DM_NOTIFY_TEMPLATES`` names that got a stand-in, sorted.
    :param key: a hash of ``seed``: apps with the same key can share one sandbox.
    """

    seed: Mapping[str, Any]
    stand_ins: tuple[str, ...]
    key: str


def is_stand_in(template_name: str | None) -> bool:
    """Whether a template (or a notification's ``template_name``) is a stand-in."""
    return bool(template_name) and str(template_name).endswith(STAND_IN_SUFFIX)


def stand_in_template(template_id: str, names: Iterable[str]) -> dict[str, Any]:
    """The seed template standing in for ``template_id``, named by its config ``names``."""
    label = " / ".join(names)
    return {
        "id": template_id,
        "name": f"{label}{STAND_IN_SUFFIX}",
        "type": "email",
        "subject": f"{label}{STAND_IN_SUFFIX}",
        "body": (
            f"This email was sent with a stand-in template: the sandbox has no copy of the "
            f"template “{label}” of DM_NOTIFY_TEMPLATES, so it accepts any personalisation.\n\n"
            f"Run `{PULL_COMMAND}` with a Notify test key to use the service's real "
            "templates here: missing or extra personalisation then fails on this machine as "
            "it would on Notify."
        ),
    }


def _config_seed(settings: Settings) -> dict[str, Any]:
    """``DM_NOTIFY_SANDBOX_TEMPLATES`` read and checked (``{}`` when unset)."""
    if settings.sandbox_seed is None:
        return {}
    from .sandbox.seeding import (
        SEED_KEYS,
        check_seed_keys,
        load_seed,
        parse_notify_seed,
        split_seed,
    )

    try:
        data = dict(load_seed(settings.sandbox_seed))
        check_seed_keys(data, SEED_KEYS)
        parse_notify_seed(split_seed(data)[0])
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(_SEED_KEY, f"cannot read the seed file: {error}.") from None
    except ValueError as error:  # JSON, YAML and the seed's own checks
        raise ConfigurationError(
            _SEED_KEY, f"is not a valid seed ({error}); see the sandbox guide for its shape."
        ) from None
    except (KeyError, TypeError) as error:
        raise ConfigurationError(
            _SEED_KEY, f"is not a valid seed (a template lacks {error}); see the sandbox guide."
        ) from None
    return data


def _canonical_id(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def embedded_seed(app: Flask, settings: Settings) -> EmbeddedSeed:
    """The seed of ``app``'s embedded sandbox (see the module's docstring).

    Raises :class:`~flask_dmmail.errors.TemplatesFileError` when the pulled file is there but
    cannot be read, and :class:`~flask_dmmail.errors.ConfigurationError` when
    ``DM_NOTIFY_SANDBOX_TEMPLATES`` is not a valid seed.
    """
    path = default_path(app)
    pulled = read_templates_file(path) if path.is_file() else []
    seed = _config_seed(settings)
    by_id: dict[str, dict[str, Any]] = {t.id: {**t.to_json(), "type": "email"} for t in pulled}
    unnamed: list[dict[str, Any]] = []
    for template in seed.get("templates", []):
        template_id = _canonical_id(template["id"]) if "id" in template else None
        if template_id is None:
            unnamed.append(dict(template))
        else:
            by_id[template_id] = {**template, "id": template_id}
    names_by_id: dict[str, list[str]] = {}
    for name, template_id in sorted(settings.templates.items()):
        if template_id not in by_id:
            names_by_id.setdefault(template_id, []).append(name)
    stand_ins = [stand_in_template(tid, names) for tid, names in sorted(names_by_id.items())]
    templates = [by_id[tid] for tid in sorted(by_id)] + unnamed + stand_ins
    seed["templates"] = templates
    # The app's named reply-to ids exist too (a seeded address for the same id wins).
    seed = dict(add_reply_to_seed(seed, settings))
    text = json.dumps(seed, sort_keys=True, default=str, ensure_ascii=True)
    return EmbeddedSeed(
        seed=MappingProxyType(seed),
        stand_ins=tuple(sorted(n for names in names_by_id.values() for n in names)),
        key=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def log_stand_ins(app: Flask, embedded: EmbeddedSeed) -> None:
    """Log, once, which ``DM_NOTIFY_TEMPLATES`` names are stand-ins and how to pull the real
    templates (a warning in debug mode, information in testing mode)."""
    if not embedded.stand_ins:
        return
    names = ", ".join(embedded.stand_ins)
    logger.log(
        logging.INFO if app.testing else logging.WARNING,
        "flask-dmmail sandbox mode: stand-in templates (no body here, any personalisation "
        "accepted) for these DM_NOTIFY_TEMPLATES names: %s. Run `%s` with a Notify test key "
        "to check personalisation against the real templates (written to %s).",
        names,
        PULL_COMMAND,
        DEFAULT_FILENAME,
        extra={"stand_in_templates": list(embedded.stand_ins)},
    )
