"""Authoring workflow definitions: YAML/JSON files, Python modules and a small builder.

All three compile to the same `WorkflowDefinition` protobuf message, which is what the control
plane stores and versions. The file shape is the protobuf JSON mapping (snake_case or camelCase
field names) with three conveniences: enums may be written as short lowercase names
(`idempotency: key`, `on_failure: compensate`, `compensate_idempotency: natural`), the input
schema may be written as an object (`input_schema:`) instead of a JSON string
(`input_schema_json:`), and a node kind with nothing after it (`approval:`) is that kind with
every field at its default, as `approval: {}` is.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from surefoot.v1 import common_pb2, definition_pb2

WorkflowDefinition = definition_pb2.WorkflowDefinition

_DEFINITION_FILE_SUFFIXES = (".yaml", ".yml", ".json")


class DefinitionFileError(ValueError):
    """A definition file or module that cannot be read; the message is one line."""


# --- enums: short lowercase names <-> full protobuf names -------------------------------------


def _enum_prefix(enum: EnumDescriptor) -> str:
    # Every enum in the API starts with <PREFIX>_UNSPECIFIED = 0, so the prefix is derivable
    # instead of being a table that must be kept in step with the proto.
    return enum.values_by_number[0].name.removesuffix("UNSPECIFIED")


def _enum_to_full(enum: EnumDescriptor, value: Any, path: str) -> Any:
    if not isinstance(value, str):
        return value  # integers (and type errors) are ParseDict's business
    if value in enum.values_by_name:
        return value
    full = _enum_prefix(enum) + value.strip().upper().replace("-", "_")
    if full in enum.values_by_name and enum.values_by_name[full].number != 0:
        return full
    expected = ", ".join(_enum_to_short(enum, v.name) for v in enum.values if v.number != 0)
    raise DefinitionFileError(f"{path}: unknown value {value!r} (expected one of: {expected})")


def _enum_to_short(enum: EnumDescriptor, value: str) -> str:
    return value.removeprefix(_enum_prefix(enum)).lower()


# --- dict -> proto ----------------------------------------------------------------------------


def _normalise(descriptor: Descriptor, data: Any, path: str) -> dict[str, Any]:
    """Checks a mapping against the message type and rewrites short enum names.

    ParseDict would refuse most of these mistakes too, but its messages span lines and name
    the protobuf type rather than where in the file the mistake is.
    """
    if not isinstance(data, Mapping):
        raise DefinitionFileError(f"{path or 'definition'}: expected a mapping, got {_kind(data)}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        field_path = f"{path}.{key}" if path else str(key)
        field = next((f for f in descriptor.fields if key in (f.name, f.json_name)), None)
        if field is None:
            known = ", ".join(f.name for f in descriptor.fields)
            raise DefinitionFileError(f"{field_path}: unknown field (expected one of: {known})")
        if value is None:
            if field.containing_oneof is not None and field.message_type is not None:
                # `approval:` alone picks the node kind; dropping it would leave no kind.
                out[key] = {}
            continue  # `description:` with nothing after it means "not set", as in YAML
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if not isinstance(value, Mapping):
                raise DefinitionFileError(f"{field_path}: expected a mapping, got {_kind(value)}")
            out[key] = {
                str(k): _scalar(field.message_type.fields_by_name["value"], v, f"{field_path}.{k}")
                for k, v in value.items()
            }
        elif field.is_repeated:
            if not isinstance(value, list):
                raise DefinitionFileError(f"{field_path}: expected a list, got {_kind(value)}")
            out[key] = [_value(field, item, f"{field_path}[{i}]") for i, item in enumerate(value)]
        else:
            out[key] = _value(field, value, field_path)
    return out


def _value(field: FieldDescriptor, value: Any, path: str) -> Any:
    if field.message_type is not None:
        return _normalise(field.message_type, value, path)
    if field.enum_type is not None:
        return _enum_to_full(field.enum_type, value, path)
    return _scalar(field, value, path)


def _scalar(field: FieldDescriptor, value: Any, path: str) -> Any:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING and is_int:
        return str(value)  # `version: 1` in YAML is an int where a label is meant
    is_number = is_int or isinstance(value, float)
    ok, expected = {
        FieldDescriptor.CPPTYPE_STRING: (isinstance(value, str), "a string"),
        FieldDescriptor.CPPTYPE_BOOL: (isinstance(value, bool), "true or false"),
        FieldDescriptor.CPPTYPE_DOUBLE: (is_number, "a number"),
        FieldDescriptor.CPPTYPE_FLOAT: (is_number, "a number"),
    }.get(field.cpp_type, (is_int, "an integer"))
    if not ok:
        hint = " (quote it)" if expected == "a string" and is_number else ""
        raise DefinitionFileError(f"{path}: expected {expected}, got {_kind(value)}{hint}")
    return value


def _kind(value: Any) -> str:
    return {"dict": "a mapping", "list": "a list"}.get(type(value).__name__, repr(value))


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition_from_dict(d: Mapping[str, Any]) -> definition_pb2.WorkflowDefinition:
    """Builds a definition from its friendly dict shape (as read from YAML or JSON).

    Raises:
        DefinitionFileError: an unknown field, an unknown enum value or a mistyped value; the
            message is one line and names the field path (`nodes[1].task.retry.jitter`).
    """
    data = dict(d) if isinstance(d, Mapping) else d
    if isinstance(data, dict) and "input_schema" in data:
        if "input_schema_json" in data or "inputSchemaJson" in data:
            raise DefinitionFileError("input_schema: give input_schema or input_schema_json")
        schema = data.pop("input_schema")
        if schema is not None:
            data["input_schema_json"] = _canonical_json(schema)
    normalised = _normalise(WorkflowDefinition.DESCRIPTOR, data, "")
    try:
        return json_format.ParseDict(normalised, WorkflowDefinition())
    except json_format.ParseError as exc:
        raise DefinitionFileError(_one_line(str(exc))) from exc


def _one_line(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "(no message)"
    # ParseDict nests "Failed to parse X field: " once per level; the innermost says what broke.
    return first.rsplit("field: ", 1)[-1] if "Failed to parse" in first else first


# --- proto -> dict ----------------------------------------------------------------------------


def _tidy(descriptor: Descriptor, data: dict[str, Any]) -> None:
    """Rewrites MessageToDict output the way a person would write it: short enums, `2` not `2.0`."""
    for key, value in data.items():
        field = descriptor.fields_by_name[key]
        if field.message_type is not None and not field.message_type.GetOptions().map_entry:
            items = value if isinstance(value, list) else [value]
            for item in items:
                _tidy(field.message_type, item)
        elif field.enum_type is not None:
            data[key] = _enum_to_short(field.enum_type, value)
        elif isinstance(value, float) and value.is_integer():
            data[key] = int(value)


def definition_to_dict(defn: definition_pb2.WorkflowDefinition) -> dict[str, Any]:
    """The inverse of `definition_from_dict`: short enum names, default values left out."""
    data: dict[str, Any] = json_format.MessageToDict(defn, preserving_proto_field_name=True)
    _tidy(WorkflowDefinition.DESCRIPTOR, data)
    schema = data.get("input_schema_json")
    if schema is not None:
        # Written back as an object only when that reproduces the stored string exactly, so
        # proto -> dict -> proto never changes the content hash.
        try:
            parsed = json.loads(schema)
        except ValueError:
            return data
        if _canonical_json(parsed) == schema:
            key = {"input_schema_json": "input_schema"}
            data = {key.get(k, k): (parsed if k in key else v) for k, v in data.items()}
    return data


# --- builder ----------------------------------------------------------------------------------


def _retry_to_proto(retry: Any) -> common_pb2.RetryPolicy:
    if isinstance(retry, common_pb2.RetryPolicy):
        return retry
    if _is_sdk_retry_policy(retry):
        if callable(getattr(retry, "to_proto", None)):
            return retry.to_proto()  # type: ignore[no-any-return]
        retry = {k: v for k, v in vars(retry).items() if not k.startswith("_")}
    if not isinstance(retry, Mapping):
        raise TypeError(f"retry must be a RetryPolicy or a dict, not {type(retry).__name__}")
    known = common_pb2.RetryPolicy.DESCRIPTOR.fields_by_name
    fields: dict[str, Any] = {}
    for key, value in retry.items():
        # The SDK may spell intervals as `initial_interval=timedelta(...)`; the proto in seconds.
        name = key if key in known else f"{key}_seconds"
        if isinstance(value, datetime.timedelta):
            value = value.total_seconds()
        fields[name] = list(value) if isinstance(value, tuple | frozenset | set) else value
    normalised = _normalise(common_pb2.RetryPolicy.DESCRIPTOR, fields, "retry")
    return json_format.ParseDict(normalised, common_pb2.RetryPolicy())


def _is_sdk_retry_policy(value: Any) -> bool:
    # Imported lazily: authoring must work whether or not the rest of the SDK is importable.
    try:
        from surefoot_worker._retry import RetryPolicy
    except ImportError:
        return False
    return isinstance(value, RetryPolicy)


def _enum_value(enum: Any, value: str | int, path: str) -> Any:
    full = _enum_to_full(enum.DESCRIPTOR, value, f"{path}: {enum.DESCRIPTOR.name.lower()}")
    return enum.Value(full) if isinstance(full, str) else full


class Workflow:
    """Builds a sequential workflow: `Workflow("orders", "1").task(...).task(...).build()`."""

    def __init__(
        self, name: str, version: str, description: str = "", input_schema: Any = None
    ) -> None:
        self._definition = WorkflowDefinition(name=name, version=version, description=description)
        if input_schema is not None:
            self._definition.input_schema_json = _canonical_json(input_schema)

    def task(
        self,
        node_id: str,
        step_type: str,
        *,
        input: str = "",
        idempotency: str | int | None = None,
        retry: Any = None,
        step_version: str = "",
        timeout_seconds: float = 0,
        on_failure: str | int | None = None,
        on_failure_next: str = "",
        compensate_step: str = "",
        compensate_input: str = "",
        compensate_idempotency: str | int | None = None,
        compensate_retry: Any = None,
    ) -> Workflow:
        """Appends a task node; the previous node's `next` becomes this one.

        Args:
            input: JMESPath over the run context; empty passes the run input.
            idempotency: `key`, `natural`, `none` (or the full enum name); None keeps the
                step type's declaration.
            retry: a surefoot_worker RetryPolicy, a common_pb2.RetryPolicy or a dict.
            on_failure: `dead_letter`, `compensate` or `fail`.
            on_failure_next: a fallback node to go to when the step is dead-lettered.
            compensate_step: the step type that undoes this one when the run is unwound.
            compensate_input: JMESPath over the run context plus `self` (this step's
                `input` and `output`); empty passes `self`.
            compensate_idempotency, compensate_retry: as `idempotency` and `retry`, for the
                compensating step.

        Raises:
            ValueError: a duplicate node id or an unknown enum name.
        """
        nodes = self._definition.nodes
        if any(node.id == node_id for node in nodes):
            raise ValueError(f"duplicate node id {node_id!r} in {self._definition.name!r}")
        node = definition_pb2.Node(id=node_id)
        node.task.SetInParent()  # an all-default task is still a task
        task = node.task
        task.step_type, task.step_version, task.input = step_type, step_version, input
        task.timeout_seconds = timeout_seconds
        path = f"{self._definition.name}.{node_id}"
        if idempotency is not None:
            task.idempotency = _enum_value(common_pb2.Idempotency, idempotency, path)
        if on_failure is not None:
            task.on_failure = _enum_value(definition_pb2.FailurePolicy, on_failure, path)
        if retry is not None:
            task.retry.CopyFrom(_retry_to_proto(retry))
        task.on_failure_next = on_failure_next
        task.compensate_step, task.compensate_input = compensate_step, compensate_input
        if compensate_idempotency is not None:
            task.compensate_idempotency = _enum_value(
                common_pb2.Idempotency, compensate_idempotency, path
            )
        if compensate_retry is not None:
            task.compensate_retry.CopyFrom(_retry_to_proto(compensate_retry))
        if nodes:
            nodes[-1].next = node_id
        nodes.append(node)
        return self

    def build(self) -> definition_pb2.WorkflowDefinition:
        """Returns a copy, so the builder can go on being extended."""
        definition = WorkflowDefinition()
        definition.CopyFrom(self._definition)
        return definition


# --- loading ----------------------------------------------------------------------------------


def load_definitions(path_or_module: str) -> list[definition_pb2.WorkflowDefinition]:
    """Loads definitions from a YAML/JSON file or a Python module.

    A file holds one definition, a list, or `{definitions: [...]}`; a module (dotted name or
    .py path) contributes its top-level WorkflowDefinition messages and `Workflow` builders.

    Raises:
        DefinitionFileError: unreadable, unparsable or empty; the message is one line.
    """
    if path_or_module.endswith(_DEFINITION_FILE_SUFFIXES):
        return _load_file(Path(path_or_module))
    return _load_module(path_or_module)


def _load_file(path: Path) -> list[definition_pb2.WorkflowDefinition]:
    data = _parse_file(path)
    if isinstance(data, Mapping) and "definitions" in data:
        items, where = data["definitions"], "definitions"
    elif isinstance(data, list):
        items, where = data, ""
    else:
        items, where = ([] if data is None else [data]), None
    if not isinstance(items, list):
        raise DefinitionFileError(f"{path}: definitions: expected a list, got {_kind(items)}")
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
        raise DefinitionFileError(f"{path}: YAML syntax error: {_one_line(str(exc))}") from exc


def _load_module(spec: str) -> list[definition_pb2.WorkflowDefinition]:
    expected = "expected a .yaml, .yml, .json or .py file, or an importable module"
    if not spec.endswith(".py") and ("/" in spec or "\\" in spec):
        raise DefinitionFileError(f"{spec}: {expected}")
    try:
        module = _import_path(Path(spec)) if spec.endswith(".py") else importlib.import_module(spec)
    except DefinitionFileError:
        raise
    except Exception as exc:  # user code runs here: any failure is "cannot import"
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing and (spec == missing or spec.startswith(f"{missing}.")):
            raise DefinitionFileError(f"{spec}: no such module ({expected})") from exc
        message = f"{type(exc).__name__}: {_one_line(str(exc))}"
        raise DefinitionFileError(f"{spec}: cannot import: {message}") from exc
    definitions: list[definition_pb2.WorkflowDefinition] = []
    seen: set[int] = set()  # the same builder bound to two names is one definition
    for name, value in vars(module).items():
        if name.startswith("_") or id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, WorkflowDefinition):
            definitions.append(value)
        elif isinstance(value, Workflow):
            definitions.append(value.build())
    if not definitions:
        raise DefinitionFileError(
            f"{spec}: no definitions found (expected top-level WorkflowDefinition or Workflow)"
        )
    return definitions


def _import_path(path: Path) -> Any:
    if not path.is_file():
        raise DefinitionFileError(f"{path}: file not found")
    name = f"_surefoot_definitions_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DefinitionFileError(f"{path}: cannot import as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before execution so that dataclasses and pickling inside it can find it.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
