"""Hypothesis strategies for any protobuf request, built from its message descriptor.

A field gets values an attacker would try: strings with NUL bytes, odd Unicode and huge
lengths, integers at the edges of their type, NaN and infinities, enum numbers nobody
declared, nested messages and repeated fields. Strings are mixed with `known` values (ids of
objects that exist on the server under test) so that a request gets past "not found" often
enough to reach the code behind it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

# Deep enough to reach a definition's node kinds (definition.nodes[i].task.retry...).
MAX_DEPTH = 4
INT32 = (-(2**31), -1, 0, 1, 2, 999, 1000, 1001, 10_000, 10_001, 2**31 - 1)
INT64 = (-(2**63), -(2**31), -1, 0, 1, 2**31, 2**53 + 1, 2**63 - 1)
UINT32 = (0, 1, 2**31, 2**32 - 1)
UINT64 = (0, 1, 2**63, 2**64 - 1)
FLOATS = (0.0, -0.0, -1.0, 0.5, 1.0, 1e-300, 1e300, float("inf"), float("-inf"), float("nan"))

_INT_EDGES: dict[int, tuple[int, ...]] = {
    FieldDescriptor.TYPE_INT32: INT32,
    FieldDescriptor.TYPE_SINT32: INT32,
    FieldDescriptor.TYPE_SFIXED32: INT32,
    FieldDescriptor.TYPE_INT64: INT64,
    FieldDescriptor.TYPE_SINT64: INT64,
    FieldDescriptor.TYPE_SFIXED64: INT64,
    FieldDescriptor.TYPE_UINT32: UINT32,
    FieldDescriptor.TYPE_FIXED32: UINT32,
    FieldDescriptor.TYPE_UINT64: UINT64,
    FieldDescriptor.TYPE_FIXED64: UINT64,
}

# Strings a server may mishandle: NUL, control characters, right-to-left marks, emoji,
# characters outside the BMP, path and SQL metacharacters, very long ones.
ODD_STRINGS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "latest",
    "*",
    "%",
    "_",
    "'; DROP TABLE runs; --",
    "../../etc/passwd",
    "\u202e\u0645\u0631\u062d\u0628\u0627",
    "\U0001f4a5\u200d\U0001f525",
    "\ufeff",
    "\r\n",
)
# Lengths past the usual column limits (200, 300) and far beyond; made on demand, so that a
# strategy's repr stays readable.
LONG = (201, 301, 10_000, 70_000)


def odd_strings() -> st.SearchStrategy[str]:
    long = st.tuples(st.sampled_from("aé💥"), st.sampled_from(LONG)).map(
        lambda pair: pair[0] * pair[1]
    )
    return st.sampled_from(ODD_STRINGS) | long


# JSON a Payload may carry: valid values, values the store cannot keep, and not JSON at all.
ODD_JSON = (
    b"",
    b"null",
    b"{}",
    b"[]",
    b'"text"',
    b"0",
    b"1e999",
    b"NaN",
    b"-Infinity",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1" * 50,
    b'{"a": "\\ud800"}',
    b'{"\\udfff": 1}',
    b'"\\u0000"',
    b"\xff\xfe",
    b'{"a": 1, "a": 2}',
    b"{" * 10,
)
ENCODINGS = ("", "json/plain", "application/json", "\x00", "json/plain\x00", "x" * 300)


def json_values() -> st.SearchStrategy[Any]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )


# Nesting and lengths past the store's limits, made on demand (see LONG).
HUGE_JSON = (
    ("1", 5000, ""),
    ("[", 200, "]"),
    ("[", 100_000, ""),
    ('{"a":', 129, "}"),
    ("x", 5_000_000, ""),
)


def payload_data() -> st.SearchStrategy[bytes]:
    huge = st.sampled_from(HUGE_JSON).map(
        lambda parts: (parts[0] * parts[1] + parts[2] * parts[1]).encode()
    )
    return st.one_of(
        st.sampled_from(ODD_JSON),
        huge,
        json_values().map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=64),
    )


class MessageStrategies:
    """Strategies for messages of one API, with the ids the server under test knows.

    Args:
        known: Values for string fields by field name (`run_id`: the ids of real runs...),
            drawn about a third of the time; `"*"` applies to every string field.
    """

    def __init__(
        self,
        known: Mapping[str, Sequence[str]] | None = None,
        strings: Mapping[str, st.SearchStrategy[str]] | None = None,
    ) -> None:
        self.known = {name: tuple(values) for name, values in (known or {}).items()}
        # Strategies that replace the generic one for a field, by its full name
        # ("surefoot.v1.WorkflowDefinition.name").
        self.strings = dict(strings or {})
        self._cache: dict[tuple[str, int], st.SearchStrategy[Message]] = {}

    def of(self, message_class: type[Message]) -> st.SearchStrategy[Message]:
        """Any message of the class, every field optional."""
        return self._message(message_class.DESCRIPTOR, message_class, 0)

    def near(self, bases: Sequence[Message], changes: int = 2) -> st.SearchStrategy[Message]:
        """One of `bases` (valid requests) with one to `changes` fields, at any depth,
        replaced by a generated value or cleared: requests that pass most checks and fail
        (or pass) the last one, where the code is least exercised."""

        @st.composite
        def mutated(draw: st.DrawFn) -> Message:
            message = draw(st.sampled_from(bases))
            copy = type(message)()
            copy.CopyFrom(message)
            for _ in range(draw(st.integers(1, changes))):
                self._mutate(draw, copy, 0)
            return copy

        return mutated()

    def _mutate(self, draw: st.DrawFn, message: Message, depth: int) -> None:
        descriptor: Any = message.DESCRIPTOR
        field: FieldDescriptor = draw(st.sampled_from(list(descriptor.fields)))
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        is_map = _is_map(field)
        value = getattr(message, field.name)
        if is_message and not is_map and descriptor.full_name != "surefoot.v1.Payload":
            # Go deeper into what is there, most of the time.
            if field.is_repeated and len(value) and draw(st.booleans()):
                index = draw(st.integers(0, len(value) - 1))
                self._mutate(draw, value[index], depth + 1)
                return
            if not field.is_repeated and message.HasField(field.name) and draw(st.booleans()):
                self._mutate(draw, value, depth + 1)
                return
        message.ClearField(field.name)
        if draw(st.integers(0, 4)) == 0:
            return  # cleared
        new = draw(self._field(field, depth))
        _build_into(message, descriptor, {field.name: new})

    def _message(
        self, descriptor: Any, message_class: type[Message] | None, depth: int
    ) -> st.SearchStrategy[Message]:
        key = (descriptor.full_name, depth)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        cls = message_class or _class_of(descriptor)
        if descriptor.full_name == "surefoot.v1.Payload":
            made: st.SearchStrategy[Message] = st.builds(
                lambda encoding, data: cls(encoding=encoding, data=data),
                st.sampled_from(ENCODINGS[:2]) | st.sampled_from(ENCODINGS),
                payload_data(),
            )
        else:
            fields = {
                field.name: self._field(field, depth)
                for field in descriptor.fields
                if depth < MAX_DEPTH or field.type != FieldDescriptor.TYPE_MESSAGE
            }
            made = st.fixed_dictionaries({}, optional=fields).map(
                lambda values: _build(cls, descriptor, values)
            )
        # Deferred: the repr of the whole tree would be tens of kB in every report.
        named = st.deferred(lambda: made)
        self._cache[key] = named
        return named

    def _field(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if _is_map(field):
            entry: Any = field.message_type
            key_field = entry.fields_by_name["key"]
            value_field = entry.fields_by_name["value"]
            return st.dictionaries(
                self._scalar(key_field, depth + 1),
                self._scalar(value_field, depth + 1),
                max_size=3,
            )
        single = self._scalar(field, depth)
        if field.is_repeated:
            # Mostly short lists; sometimes one long enough to hit a size limit.
            return st.lists(single, max_size=4) | st.lists(single, min_size=50, max_size=60)
        return single

    def _scalar(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        kind = field.type
        if kind == FieldDescriptor.TYPE_MESSAGE:
            return self._message(field.message_type, None, depth + 1)
        if kind == FieldDescriptor.TYPE_STRING:
            return self._string(field)
        if kind == FieldDescriptor.TYPE_BYTES:
            return payload_data()
        if kind == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if kind == FieldDescriptor.TYPE_ENUM:
            enum: Any = field.enum_type
            declared = [value.number for value in enum.values]
            # proto3 enums are open: an undeclared number travels and must be refused.
            return st.sampled_from(declared) | st.sampled_from((-1, 99, 2**31 - 1))
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return st.sampled_from(FLOATS) | st.floats(-1e6, 1e6)
        edges = _INT_EDGES[kind]
        low, high = min(edges), max(edges)
        return st.sampled_from(edges) | st.integers(low, high)

    def _string(self, field: FieldDescriptor) -> st.SearchStrategy[str]:
        special = self.strings.get(field.full_name)
        if special is not None:
            return special
        name = field.name
        choices = [
            odd_strings(),
            # Any Unicode but lone surrogates, which protobuf cannot serialise.
            st.text(st.characters(codec="utf-8"), max_size=30),
        ]
        known = self.known.get(name, ()) + self.known.get("*", ())
        if known:
            # Known ids twice: most of the search is then past "not found".
            choices += [st.sampled_from(known), st.sampled_from(known)]
        return st.one_of(choices)


def _class_of(descriptor: Any) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def _is_map(field: FieldDescriptor) -> bool:
    entry: Any = field.message_type
    return field.type == FieldDescriptor.TYPE_MESSAGE and bool(entry.GetOptions().map_entry)


def _build(cls: type[Message], descriptor: Any, values: dict[str, Any]) -> Message:
    message = cls()
    _build_into(message, descriptor, values)
    return message


def _build_into(message: Message, descriptor: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        target = getattr(message, name)
        if _is_map(field):
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            target.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
