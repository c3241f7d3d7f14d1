"""Importing a user's module (dotted name or ``.py`` file) and finding the steps it declares.

The one way the SDK imports user code: ``surefoot worker`` (steps) and ``surefoot definitions
apply`` (definitions) load a module the same way, so a file that declares both is imported once.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ._step import StepDefinition


def load_steps(module_name_or_path: str) -> list[StepDefinition]:
    """Import a module and collect the steps declared at its top level.

    Steps a module imports from elsewhere count too, so a module can gather the steps of a
    package for ``surefoot worker``.

    Args:
        module_name_or_path: A dotted module name (``myapp.steps``) or a ``.py`` file path.

    Returns:
        The step definitions, in the order the module defines them, each once.

    Raises:
        ModuleNotFoundError: If the module (or the file) does not exist.
        ValueError: If the module declares no steps, or two different steps with the same
            name and version.
    """
    module = import_user_module(module_name_or_path)
    found: dict[tuple[str, str], StepDefinition] = {}
    for value in list(vars(module).values()):
        definition = StepDefinition.of(value)
        if definition is None:
            continue
        existing = found.get(definition.key)
        if existing is not None and existing.handler is not definition.handler:
            raise ValueError(
                f"module {module.__name__} declares step {definition.name}@{definition.version} "
                f"twice ({existing.handler.__qualname__} and {definition.handler.__qualname__})"
            )
        found[definition.key] = definition
    if not found:
        raise ValueError(
            f"module {module_name_or_path} declares no steps: "
            "decorate handlers with @step(idempotency=...)"
        )
    return list(found.values())


def import_user_module(module_name_or_path: str) -> ModuleType:
    """Import a dotted module name, or a ``.py`` file as the module named after its stem.

    A file's folder goes on ``sys.path`` so that modules beside it import each other by plain
    name, as when it runs as a script; importing the same file again returns the same module.

    Raises:
        ModuleNotFoundError: If the module (or the file) does not exist.
        Exception: Whatever the module raises while it is executed.
    """
    if not module_name_or_path.endswith(".py"):
        return importlib.import_module(module_name_or_path)
    path = Path(module_name_or_path).resolve()
    if not path.is_file():
        raise ModuleNotFoundError(f"no module file {module_name_or_path}", path=str(path))
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    # Modules next to the file import each other by plain name, as when it runs as a script.
    parent = str(path.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"cannot import {module_name_or_path}", path=str(path))
    module = importlib.util.module_from_spec(spec)
    # Registered before execution, as the import system does, so that dataclasses and
    # pickling inside the module can find it by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
