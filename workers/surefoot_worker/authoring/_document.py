"""A definition in its document form (as YAML or JSON hold it) and back, with one-line errors.

The document shape is the protobuf JSON mapping (snake_case or camelCase field names) with these
conveniences: enums may be written as short lowercase names (`idempotency: key`,
`on_failure: compensate`), the input schema may be written as an object (`input_schema:`)
instead of a JSON string (`input_schema_json:`), as may an ai node's `output_schema:` and a
fallback's `default_output:` (`_ai.py`), and a node kind with nothing after it (`approval:`)
is that kind with every field at its default, as `approval: {}` is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from surefoot.v1 import definition_pb2

WorkflowDefinition = definition_pb2.WorkflowDefinition


class DefinitionFileError(ValueError):
    """A definition file or module that cannot be read; the message is one line."""


# --- enums: short lowercase names <-> full protobuf names -------------------------------------


def _enum_prefix(enum: EnumDescriptor) -> str:
    # Every enum in the API starts with <PREFIX>_UNSPECIFIED = 0, so the prefix is derivable
    # instead of being a table that must be kept in step with the proto.
    return enum.values_by_number[0].name.removesuffix("UNSPECIFIED")


def enum_to_full(enum: EnumDescriptor, value: Any, path: str) -> Any:
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


def normalise(descriptor: Descriptor, data: Any, path: str) -> dict[str, Any]:
    """Checks a mapping against the message type and rewrites short enum names.

    ParseDict would refuse most of these mistakes too, but its messages span lines and name
    the protobuf type rather than where in the file the mistake is.
    """
    if not isinstance(data, Mapping):
        where = path or "definition"
        raise DefinitionFileError(f"{where}: expected a mapping, got {kind_of(data)}")
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
                raise DefinitionFileError(f"{field_path}: expected a mapping, got {kind_of(value)}")
            out[key] = {
                str(k): _scalar(field.message_type.fields_by_name["value"], v, f"{field_path}.{k}")
                for k, v in value.items()
            }
        elif field.is_repeated:
            if not isinstance(value, list):
                raise DefinitionFileError(f"{field_path}: expected a list, got {kind_of(value)}")
            out[key] = [_value(field, item, f"{field_path}[{i}]") for i, item in enumerate(value)]
        else:
            out[key] = _value(field, value, field_path)
    return out


def _value(field: FieldDescriptor, value: Any, path: str) -> Any:
    if field.message_type is not None:
        return normalise(field.message_type, value, path)
    if field.enum_type is not None:
        return enum_to_full(field.enum_type, value, path)
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
        raise DefinitionFileError(f"{path}: expected {expected}, got {kind_of(value)}{hint}")
    return value


def kind_of(value: Any) -> str:
    return {"dict": "a mapping", "list": "a list"}.get(type(value).__name__, repr(value))


def canonical_json(value: Any) -> str:
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
            data["input_schema_json"] = canonical_json(schema)
    if isinstance(data, dict):
        # Imported here: the AI conveniences build on this module's helpers.
        from ._ai import documents_in

        data = documents_in(data)
    normalised = normalise(WorkflowDefinition.DESCRIPTOR, data, "")
    try:
        return json_format.ParseDict(normalised, WorkflowDefinition())
    except json_format.ParseError as exc:
        raise DefinitionFileError(one_line(str(exc))) from exc


def one_line(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "(no message)"
    # ParseDict nests "Failed to parse X field: " once per level; the innermost says what broke.
    return first.rsplit("field: ", 1)[-1] if "Failed to parse" in first else first


# --- proto -> dict ----------------------------------------------------------------------------


_INT64 = (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64)


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
        elif field.cpp_type in _INT64 and isinstance(value, str):
            # The JSON mapping writes 64-bit integers as strings (`max_run_tokens: "4000"`).
            data[key] = int(value)


def definition_to_dict(defn: definition_pb2.WorkflowDefinition) -> dict[str, Any]:
    """The inverse of `definition_from_dict`: short enum names, default values left out."""
    from ._ai import documents_out  # here, as documents_in above

    data: dict[str, Any] = json_format.MessageToDict(defn, preserving_proto_field_name=True)
    _tidy(WorkflowDefinition.DESCRIPTOR, data)
    data = documents_out(data)
    schema = data.get("input_schema_json")
    if schema is not None:
        # Written back as an object only when that reproduces the stored string exactly, so
        # proto -> dict -> proto never changes the content hash.
        try:
            parsed = json.loads(schema)
        except ValueError:
            return data
        if canonical_json(parsed) == schema:
            key = {"input_schema_json": "input_schema"}
            data = {key.get(k, k): (parsed if k in key else v) for k, v in data.items()}
    return data
