"""The seed of an app's embedded sandbox, and the one place its state is made from it."""

from __future__ import annotations

from ..sandbox import SandboxState
from ..templates_file import EmbeddedSeed, embedded_seed

__all__ = ["EmbeddedSeed", "embedded_seed", "new_state"]


def new_state(seed: EmbeddedSeed, *, service_id: str | None) -> SandboxState:
    """The state of an embedded sandbox seeded with ``seed``: only the app's templates, so any
    other id is "Template not found", as on Notify."""
    return SandboxState(seed.seed, auto_templates=False, service_id=service_id)
