"""Reading definitions from YAML and JSON files, with `file:line:column` syntax errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from surefoot.v1 import definition_pb2

from ._document import DefinitionFileError, definition_from_dict, kind_of, one_line

DEFINITION_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def load_file(path: Path) -> list[definition_pb2.WorkflowDefinition]:
    """The definitions of one file: one definition, a list, or `{definitions: [...]}`.

    Raises:
        DefinitionFileError: unreadable, unparsable or empty; the message is one line.
    """
    data = _parse_file(path)
    if isinstance(data, Mapping) and "definitions" in data:
        items, where = data["definitions"], "definitions"
    elif isinstance(data, list):
        items, where = data, ""
    else:
        items, where = ([] if data is None else [data]), None
    if not isinstance(items, list):
        raise DefinitionFileError(f"{path}: definitions: expected a list, got {kind_of(items)}")
    if not items:
        raise DefinitionFileError(f"{path}: no definitions found")
    definitions = []
    for i, item in enumerate(items):
        try:
            definitions.append(definition_from_dict(item))
        except DefinitionFileError as exc:
            # Which definition of the list is at fault, then where inside it.
            prefix = f"{where}[{i}]: " if where is not None else ""
            raise DefinitionFileError(f"{path}: {prefix}{exc}") from exc
    return definitions


def _parse_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionFileError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionFileError(f"{path}: cannot read: {exc}") from exc
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DefinitionFileError(
                f"{path}:{exc.lineno}:{exc.colno}: JSON syntax error: {exc.msg}"
            ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        raise DefinitionFileError(f"{where}: YAML syntax error: {problem}") from exc
    except yaml.YAMLError as exc:
        raise DefinitionFileError(f"{path}: YAML syntax error: {one_line(str(exc))}") from exc
