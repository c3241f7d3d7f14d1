"""What changed between two definitions, node by node, in their authoring (YAML) form.

An operator deciding whether in-flight runs of the old version are affected wants "node
charge: retry.max_attempts 3 -> 5", not a text diff where moved lines look like changes; the
text diff is still offered (`--unified`) for review tools.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import yaml
from surefoot.v1 import definition_pb2

# A field that is absent on one side shows as this.
ABSENT = "(absent)"


@dataclass
class FieldChange:
    path: str
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


@dataclass
class DefinitionDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # Node id -> its changed fields; "" holds the definition's own fields (description...).
    changed: dict[str, list[FieldChange]] = field(default_factory=dict)
    # Node ids in the order of the new definition, for printing.
    order: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "definition": [c.as_dict() for c in self.changed.get("", [])],
            "added": self.added,
            "removed": self.removed,
            "changed": {
                node: [c.as_dict() for c in changes]
                for node, changes in self.changed.items()
                if node
            },
        }


def diff_definitions(before: dict[str, Any], after: dict[str, Any]) -> DefinitionDiff:
    """Compare two definitions in the form `definition_to_dict` gives."""
    result = DefinitionDiff()
    old_nodes = _nodes_by_id(before)
    new_nodes = _nodes_by_id(after)
    # name and version differ by construction; what matters is everything else.
    own = _changes(
        _without(before, "nodes", "name", "version"), _without(after, "nodes", "name", "version")
    )
    if own:
        result.changed[""] = own
    result.order = list(new_nodes) + [n for n in old_nodes if n not in new_nodes]
    for node_id in result.order:
        if node_id not in old_nodes:
            result.added.append(node_id)
        elif node_id not in new_nodes:
            result.removed.append(node_id)
        else:
            changes = _changes(old_nodes[node_id], new_nodes[node_id])
            if changes:
                result.changed[node_id] = changes
    return result


def describe(diff: DefinitionDiff, before_ref: str, after_ref: str, after: dict[str, Any]) -> str:
    """The human form: one line per added/removed node and per changed field."""
    if diff.identical:
        return f"{before_ref} and {after_ref} define the same workflow\n"
    new_nodes = _nodes_by_id(after)
    lines = [f"{before_ref} -> {after_ref}"]
    for change in diff.changed.get("", []):
        lines.append(f"  {change.path}: {_show(change.before)} -> {_show(change.after)}")
    for node_id in diff.order:
        if node_id in diff.added:
            lines.append(f"  + node {node_id} ({_kind(new_nodes[node_id])})")
        elif node_id in diff.removed:
            lines.append(f"  - node {node_id}")
        elif node_id in diff.changed:
            lines.append(f"  ~ node {node_id}")
            for change in diff.changed[node_id]:
                lines.append(
                    f"      {change.path}: {_show(change.before)} -> {_show(change.after)}"
                )
    summary = (
        f"{len(diff.added)} added, {len(diff.removed)} removed, "
        f"{len([n for n in diff.changed if n])} changed"
    )
    lines.append(f"  ({summary})")
    return "\n".join(lines) + "\n"


def unified(before: dict[str, Any], after: dict[str, Any], before_ref: str, after_ref: str) -> str:
    """A unified diff of the two YAML forms."""
    old = yaml.safe_dump(before, sort_keys=False, allow_unicode=True).splitlines(keepends=True)
    new = yaml.safe_dump(after, sort_keys=False, allow_unicode=True).splitlines(keepends=True)
    return "".join(difflib.unified_diff(old, new, fromfile=before_ref, tofile=after_ref))


def _nodes_by_id(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["id"]: _without(node, "id") for node in definition.get("nodes", [])}


def _without(mapping: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}


def _changes(before: Any, after: Any, path: str = "") -> list[FieldChange]:
    """Leaf differences; lists are compared whole (branch order, cases) to stay readable."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[FieldChange] = []
        for key in list(before) + [k for k in after if k not in before]:
            inner = f"{path}.{key}" if path else str(key)
            changes += _changes(before.get(key, ABSENT), after.get(key, ABSENT), inner)
        return changes
    if before == after:
        return []
    return [FieldChange(path, before, after)]


# Read from the proto: a new node kind needs no change here.
NODE_KINDS = tuple(
    field.name for field in definition_pb2.Node.DESCRIPTOR.oneofs_by_name["kind"].fields
)


def _kind(node: dict[str, Any]) -> str:
    for kind in NODE_KINDS:
        if kind in node:
            if kind == "task":
                task = node["task"]
                version = task.get("step_version")
                return f"task {task.get('step_type', '?')}" + (f"@{version}" if version else "")
            return kind
    return "node"


def _show(value: Any) -> str:
    if value == ABSENT:
        return ABSENT
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    # safe_dump of a scalar ends with a document-end marker.
    text = text.removesuffix("...").strip()
    return text if len(text) <= 120 else text[:117] + "..."
