"""Reply-to addresses by name: ``DM_NOTIFY_REPLY_TO_IDS`` maps names to the ids of the
service's reply-to addresses, as ``DM_NOTIFY_TEMPLATES`` maps names to template ids.

:func:`resolve_reply_to` turns the ``reply_to_id`` of a send (a name or a UUID) into an id;
:func:`reply_to_seed` gives the embedded sandbox a stand-in address for every named id, so
that a name that works on Notify works in sandbox mode too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import InvalidOptionError
from .validation import named_id, shown_name

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["STAND_IN_DOMAIN", "add_reply_to_seed", "reply_to_seed", "resolve_reply_to"]

#: The domain of the stand-in addresses the embedded sandbox gets for named reply-to ids
#: (``.invalid`` is reserved: no mail can ever go there).
STAND_IN_DOMAIN = "sandbox.invalid"


def resolve_reply_to(value: object, known: Mapping[str, str]) -> str:
    """The reply-to address id for ``value``: a name from DM_NOTIFY_REPLY_TO_IDS, or a UUID
    (lower-cased). Raises :class:`~flask_dmmail.errors.InvalidOptionError` otherwise.

    :param value: the ``reply_to_id`` given to the send.
    :param known: DM_NOTIFY_REPLY_TO_IDS (name → id).
    """
    if isinstance(value, str):
        found = named_id(value, known)
        if found is not None:
            return found
        names = ", ".join(sorted(known)) or "(none configured)"
        shown = shown_name(value)
        raise InvalidOptionError(
            f"The reply_to_id {shown} is not a name in DM_NOTIFY_REPLY_TO_IDS nor a UUID. "
            f"Known names: {names}. Give a name from DM_NOTIFY_REPLY_TO_IDS, or the id of one of "
            "the service's reply-to addresses (Notify: Settings > Reply-to email addresses)."
        )
    raise InvalidOptionError(
        "The reply_to_id must be a name from DM_NOTIFY_REPLY_TO_IDS or a reply-to address "
        f"UUID, not {type(value).__name__}."
    )


def _stand_in_address(name: str) -> str:
    local = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "reply-to"
    return f"{local[:40]}.reply-to@{STAND_IN_DOMAIN}"


def reply_to_seed(settings: Settings) -> list[dict[str, str]]:
    """The ``reply_to_addresses`` entries of the embedded sandbox's seed: one per id named in
    DM_NOTIFY_REPLY_TO_IDS, with a stand-in address (``<name>.reply-to@sandbox.invalid``).

    Put them before the entries of the app's own seed (DM_NOTIFY_SANDBOX_TEMPLATES), so that
    an address seeded there for the same id wins.

    :param settings: the app's :class:`~flask_dmmail.config.Settings`.
    """
    return [
        {"id": reply_id, "email_address": _stand_in_address(name)}
        for name, reply_id in settings.reply_to_ids.items()
    ]


def add_reply_to_seed(seed: Any, settings: Settings) -> Any:
    """``seed`` (a mapping, a seed file's path, or None) with :func:`reply_to_seed`'s entries
    first in its ``reply_to_addresses``; ``seed`` itself when the app names no reply-to id.

    :param seed: the embedded sandbox's seed.
    :param settings: the app's :class:`~flask_dmmail.config.Settings`.
    """
    entries = reply_to_seed(settings)
    if not entries:
        return seed
    from .sandbox.seeding import load_seed

    data = dict(load_seed(seed)) if seed is not None else {}
    own = data.get("reply_to_addresses", [])
    if isinstance(own, list):  # anything else is the seed's own mistake: the sandbox says so
        data["reply_to_addresses"] = entries + own
    return data
