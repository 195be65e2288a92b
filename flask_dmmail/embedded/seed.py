"""The seed of an app's embedded sandbox, and the one place its state is made from it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask

from ..config import Settings
from ..sandbox import SandboxState
from ..sandbox.seeding import load_seed

__all__ = ["EmbeddedSeed", "embedded_seed", "new_state"]

# -- the seed ------------------------------------------------------------------------------------
# MERGE(X8a): flask_dmmail.templates_file provides embedded_seed and EmbeddedSeed (the app's
# pulled templates and stand-ins); at merge, import them from there and delete these two.


@dataclass(frozen=True)
class EmbeddedSeed:
    """What the embedded sandbox is seeded with: the seed, the names of stand-in templates,
    and a key that is equal for equal seeds (apps with the same key share a sandbox)."""

    seed: Mapping[str, Any] | str | None
    stand_ins: tuple[str, ...] = ()
    key: str = ""


def embedded_seed(app: Flask, settings: Settings) -> EmbeddedSeed:
    """The seed of ``app``'s embedded sandbox: ``DM_NOTIFY_SANDBOX_TEMPLATES``."""
    seed = settings.sandbox_seed
    data = load_seed(seed) if seed is not None else {}
    text = json.dumps(data, sort_keys=True, default=str)
    return EmbeddedSeed(seed, (), hashlib.sha256(text.encode()).hexdigest())


def new_state(seed: EmbeddedSeed, *, service_id: str | None) -> SandboxState:
    # MERGE(X8a): the one place the embedded sandbox's state is made from an app's seed.
    return SandboxState(seed.seed, auto_templates=True, service_id=service_id)
