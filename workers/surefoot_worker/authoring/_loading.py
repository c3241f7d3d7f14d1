"""`load_definitions`: the definitions of a YAML/JSON file or of a Python module."""

from __future__ import annotations

from pathlib import Path

from surefoot.v1 import definition_pb2

from .._loader import import_user_module
from ._builder import Workflow
from ._document import DefinitionFileError, one_line
from ._files import DEFINITION_FILE_SUFFIXES, load_file


def load_definitions(path_or_module: str) -> list[definition_pb2.WorkflowDefinition]:
    """Loads definitions from a YAML/JSON file or a Python module.

    A file holds one definition, a list, or `{definitions: [...]}`; a module (dotted name or
    .py path, imported as `surefoot worker` imports steps) contributes its top-level
    WorkflowDefinition messages and `Workflow` builders.

    Raises:
        DefinitionFileError: unreadable, unparsable or empty; the message is one line.
    """
    if path_or_module.endswith(DEFINITION_FILE_SUFFIXES):
        return load_file(Path(path_or_module))
    return _load_module(path_or_module)


def _load_module(spec: str) -> list[definition_pb2.WorkflowDefinition]:
    expected = "expected a .yaml, .yml, .json or .py file, or an importable module"
    if not spec.endswith(".py") and ("/" in spec or "\\" in spec):
        raise DefinitionFileError(f"{spec}: {expected}")
    if spec.endswith(".py") and not Path(spec).is_file():
        raise DefinitionFileError(f"{Path(spec)}: file not found")
    try:
        module = import_user_module(spec)
    except DefinitionFileError:
        raise  # a module that loads definitions itself already says where and why
    except Exception as exc:  # user code runs here: any failure is "cannot import"
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing and (spec == missing or spec.startswith(f"{missing}.")):
            raise DefinitionFileError(f"{spec}: no such module ({expected})") from exc
        message = f"{type(exc).__name__}: {one_line(str(exc))}"
        raise DefinitionFileError(f"{spec}: cannot import: {message}") from exc
    definitions: list[definition_pb2.WorkflowDefinition] = []
    seen: set[int] = set()  # the same builder bound to two names is one definition
    for name, value in vars(module).items():
        if name.startswith("_") or id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, definition_pb2.WorkflowDefinition):
            definitions.append(value)
        elif isinstance(value, Workflow):
            definitions.append(value.build())
    if not definitions:
        raise DefinitionFileError(
            f"{spec}: no definitions found (expected top-level WorkflowDefinition or Workflow)"
        )
    return definitions
