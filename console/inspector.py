"""A JSON inspector: named values (input, output, errors, an approval) as a tree one expands
node by node, and `c` copies the value under the cursor as JSON (`inspector.copy` in the key
registry, console/keys.py, as `E`, expand all, is).

Refreshing it with the same values changes nothing on screen; with new values it keeps the
nodes the operator expanded and the cursor's place, so a live run does not fold the tree
back under the operator's eyes.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from console import keys

Path = tuple[str, ...]
# A long string (a stack trace) becomes a node with one child per line.
LINE_WIDTH = 200
SCALAR_STYLES = {str: "green", bool: "yellow", int: "cyan", float: "cyan", type(None): "magenta"}


class Inspector(Tree[Any]):
    """`show({"input": {...}, "error": {...}})`; the first level starts expanded."""

    BINDINGS = keys.bindings("inspector.copy", "inspector.expand_all")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("inspector", id=id)
        self.show_root = False
        self.guide_depth = 2
        self._sections: dict[str, Any] | None = None

    @property
    def sections(self) -> dict[str, Any]:
        return dict(self._sections or {})

    def show(self, sections: dict[str, Any]) -> None:
        """Show these named values (None values are left out)."""
        sections = {name: value for name, value in sections.items() if value is not None}
        if sections == self._sections:
            return
        first = self._sections is None or list(sections) != list(self._sections)
        expanded = set() if first else self._expanded_paths(self.root)
        cursor = None if first else self._path_of(self.cursor_node)
        self._sections = sections
        self.clear()
        for name, value in sections.items():
            section = self._add(self.root, name, value, (name,))
            # New sections open at their first level; later refreshes keep what was chosen.
            if first or (name,) in expanded:
                section.expand()
        for path in sorted(expanded, key=len):
            if (found := self._find(path)) is not None:
                found.expand()
        if cursor and (at := self._find(cursor)) is not None:
            # The node's line is known once the tree has laid its lines out again.
            self.call_after_refresh(self.move_cursor, at)

    def _add(self, parent: TreeNode[Any], key: str, value: Any, path: Path) -> TreeNode[Any]:
        label = Text(key, "bold")
        if isinstance(value, dict):
            label.append(f" {{{len(value)}}}", "bright_black")
            node = parent.add(label, data=(path, value))
            for child_key, child in value.items():
                self._add(node, str(child_key), child, (*path, str(child_key)))
            return node
        if isinstance(value, list):
            label.append(f" [{len(value)}]", "bright_black")
            node = parent.add(label, data=(path, value))
            for index, child in enumerate(value):
                self._add(node, str(index), child, (*path, str(index)))
            return node
        if isinstance(value, str) and "\n" in value:
            lines = value.rstrip("\n").split("\n")
            label.append(f" ({len(lines)} lines)", "bright_black")
            node = parent.add(label, data=(path, value))
            for line in lines:
                node.add_leaf(Text(line[:LINE_WIDTH], "green"), data=(path, value))
            return node
        label.append(": ")
        label.append(json.dumps(value), SCALAR_STYLES.get(type(value), ""))
        return parent.add_leaf(label, data=(path, value))

    def _expanded_paths(self, node: TreeNode[Any]) -> set[Path]:
        found: set[Path] = set()
        for child in node.children:
            if child.is_expanded and child.data is not None:
                found.add(child.data[0])
            found |= self._expanded_paths(child)
        return found

    def _path_of(self, node: TreeNode[Any] | None) -> Path | None:
        return node.data[0] if node is not None and node.data is not None else None

    def _find(self, path: Path) -> TreeNode[Any] | None:
        node = self.root
        for depth in range(1, len(path) + 1):
            for child in node.children:
                if child.data is not None and child.data[0] == path[:depth]:
                    node = child
                    break
            else:
                return None
        return node

    @property
    def selected_value(self) -> Any:
        """The JSON value of the node under the cursor (None when nothing is selected)."""
        node = self.cursor_node
        return node.data[1] if node is not None and node.data is not None else None

    def action_copy(self) -> None:
        node = self.cursor_node
        if node is None or node.data is None:
            return
        path, value = node.data
        text = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)
        self.app.copy_to_clipboard(text)
        self.notify(f"copied {'.'.join(path)} ({len(text)} characters)", markup=False)

    def action_expand_all(self) -> None:
        self.root.expand_all()
