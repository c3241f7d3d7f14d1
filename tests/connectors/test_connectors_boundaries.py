"""What lives under `workers/` talks to the control plane over gRPC only (DESIGN.md).

The SDK and the built-in connectors ship beside the control plane, so nothing but this test
stops one of their modules from importing it, and with it the database.
"""

from __future__ import annotations

import ast
from pathlib import Path

WORKERS = Path(__file__).resolve().parents[2] / "workers"
FORBIDDEN = "controlplane"


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def test_nothing_under_workers_imports_the_control_plane() -> None:
    sources = sorted(WORKERS.rglob("*.py"))
    assert any(p.parent.name == "surefoot_connectors" for p in sources), "connectors moved?"
    offending = [
        f"{path.relative_to(WORKERS.parent)}:{line}: {module}"
        for path in sources
        for line, module in _imported_modules(path)
        if module == FORBIDDEN or module.startswith(FORBIDDEN + ".")
    ]
    assert offending == []


def test_the_scan_sees_every_form_of_import(tmp_path: Path) -> None:
    """The check above could pass by missing an import: each form it must catch, caught."""
    source = tmp_path / "module.py"
    source.write_text(
        "import controlplane.store\n"
        "from controlplane.api import errors\n"
        "import importlib\n"
        "importlib.import_module('controlplane.server')\n"
        "from . import sibling\n"
    )
    assert [module for _, module in _imported_modules(source)] == [
        "controlplane.store",
        "controlplane.api",
        "importlib",
        "controlplane.server",
    ]
