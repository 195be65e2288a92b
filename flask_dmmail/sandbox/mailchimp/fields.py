"""Mailchimp's ``fields`` and ``exclude_fields``: the dot paths that cut a response body down.

:func:`project` applies them to any answer; :func:`member_keys` tells the members page which
top-level member keys are wanted, so it builds only those.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Tree", "member_keys", "project"]

Tree = dict[str, "Tree | None"]


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


def member_keys(fields: str | None) -> frozenset[str] | None:
    """The top-level member keys a members-collection ``fields`` asks for (None: all)."""
    if not fields:
        return None
    tree = _tree(fields)
    if "members" not in tree:
        return frozenset()
    node = tree["members"]
    return None if node is None else frozenset(node)
