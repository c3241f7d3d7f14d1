"""OTLP protobuf bytes of finished spans, written directly rather than through the SDK's
encoder, which builds a message object per span, attribute and value in Python (about 45 µs a
span: the largest part of what tracing costs a worker running short steps).

Only plain spans take this path: scalar attributes, no events, links or trace state, nothing
dropped, scopes without attributes or schema. `encode_request` answers None for a batch with
anything else, which then goes through the SDK's encoder unchanged. The control plane writes
its run spans with the same primitives (controlplane/tracing/wire.py). Tests hold both to what
the SDK's encoder makes of the same spans.

Field numbers: opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

_LENGTH = 2  # wire type of strings, bytes and messages
_FIXED64 = struct.Struct("<Q")
_DOUBLE = struct.Struct("<d")
_FLAGS = b"\x85\x01"  # Span field 16 (flags), fixed32
_HAS_IS_REMOTE = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_KEYS: dict[str, bytes] = {}  # attribute key -> its encoded KeyValue.key field
# (field number, key, text value) -> the attribute's whole field; emptied when it fills.
_FIELDS: dict[tuple[int, str, str], bytes] = {}
_MAX_FIELDS = 4096
# Most varints written are lengths and tags under 128: one byte each, taken from a table
# (a span is some thirty fields; this halves what writing one costs).
_ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))
# Tags of length-delimited fields 1-15 (one byte each): those the trace protos use.
_TAGS = tuple(bytes((n << 3 | _LENGTH,)) for n in range(16))


def varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if value < 0:
        value += 1 << 64  # int64 two's complement, as protobuf writes it
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, data: bytes) -> bytes:
    """A length-delimited field (string, bytes or message)."""
    size = len(data)
    tag = _TAGS[number] if number < 16 else varint(number << 3 | _LENGTH)
    return tag + (_ONE_BYTE[size] if size < 0x80 else varint(size)) + data


def _key(key: str) -> bytes:
    found = _KEYS.get(key)
    if found is None:
        found = _KEYS[key] = field(1, key.encode())
    return found


def _value(value: Any) -> bytes:
    """An AnyValue's bytes (scalars only: see `plain`)."""
    if isinstance(value, str):
        return field(1, value.encode())
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return b"\x18" + varint(value)
    return b"\x21" + _DOUBLE.pack(value)


def attributes(values: Mapping[str, Any], number: int) -> bytes:
    """Repeated KeyValue field `number`. Raises TypeError or struct.error for a value that is
    not a scalar (see `plain_values`)."""
    parts = []
    for key, value in values.items():
        if type(value) is str:
            # Most of a span's text attributes repeat from span to span (a workflow, a node,
            # a step type): their whole field is kept; ids that never repeat only pass through.
            found = _FIELDS.get((number, key, value))
            if found is None:
                if len(_FIELDS) >= _MAX_FIELDS:
                    _FIELDS.clear()
                found = _FIELDS[number, key, value] = field(
                    number, _key(key) + field(2, _value(value))
                )
            parts.append(found)
        else:
            parts.append(field(number, _key(key) + field(2, _value(value))))
    return b"".join(parts)


def plain_values(values: Mapping[str, Any] | None) -> bool:
    return not values or all(type(v) in (str, bool, int, float) for v in values.values())


def status(code: int, message: str) -> bytes:
    """A Status's bytes."""
    return (field(2, message.encode()) if message else b"") + (
        b"\x18" + varint(code) if code else b""
    )


def span(
    *,
    trace_id: bytes,
    span_id: bytes,
    parent_span_id: bytes,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    values: Mapping[str, Any],
    status_bytes: bytes,
    parent_is_remote: bool = False,
) -> bytes:
    """A Span's bytes."""
    parts = [field(1, trace_id), field(2, span_id)]
    if parent_span_id:
        parts.append(field(4, parent_span_id))
    parts.append(field(5, name.encode()))
    parts.append(b"\x30" + varint(kind))  # 6: kind
    parts.append(b"\x39" + _FIXED64.pack(start_ns))  # 7: start_time_unix_nano
    parts.append(b"\x41" + _FIXED64.pack(end_ns))  # 8: end_time_unix_nano
    parts.append(attributes(values, 9))
    parts.append(field(15, status_bytes))
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if parent_is_remote else 0)
    parts.append(_FLAGS + struct.pack("<I", flags))  # 16: flags, as the SDK's encoder sets
    return b"".join(parts)


def request(resources: Sequence[tuple[bytes, Sequence[tuple[bytes, Sequence[bytes]]]]]) -> bytes:
    """An ExportTraceServiceRequest's bytes: per resource, its scopes and their spans, where
    a resource and a scope are a Resource's and an InstrumentationScope's own bytes."""
    out = []
    for resource, scopes in resources:
        scope_spans = b"".join(
            field(2, field(1, scope) + b"".join(field(2, s) for s in spans))
            for scope, spans in scopes
        )
        out.append(field(1, field(1, resource) + scope_spans))
    return b"".join(out)


def encode_request(spans: Sequence[Any]) -> bytes | None:
    """The request's bytes for SDK `ReadableSpan`s, or None when one is not plain."""
    # Grouped as the SDK's encoder groups: by resource, then by scope, in order of arrival.
    resources: dict[int, tuple[bytes, dict[int, tuple[bytes, list[bytes]]]]] = {}
    for sdk_span in spans:
        if sdk_span.events or sdk_span.links:
            return None
        if sdk_span.dropped_attributes or sdk_span.dropped_events or sdk_span.dropped_links:
            return None
        context = sdk_span.get_span_context()
        scope = sdk_span.instrumentation_scope
        resource = sdk_span.resource
        if context.trace_state or (scope is not None and (scope.attributes or scope.schema_url)):
            return None
        if resource.schema_url or not plain_values(resource.attributes):
            return None
        if id(resource) not in resources:
            resources[id(resource)] = (attributes(resource.attributes, 1), {})
        scopes = resources[id(resource)][1]
        if id(scope) not in scopes:
            scope_bytes = b""
            if scope is not None:
                scope_bytes = field(1, scope.name.encode())
                if scope.version:
                    scope_bytes += field(2, scope.version.encode())
            scopes[id(scope)] = (scope_bytes, [])
        parent = sdk_span.parent
        code = sdk_span.status.status_code.value if sdk_span.status is not None else 0
        message = (sdk_span.status.description or "") if sdk_span.status is not None else ""
        try:
            written = span(
                trace_id=context.trace_id.to_bytes(16, "big"),
                span_id=context.span_id.to_bytes(8, "big"),
                parent_span_id=parent.span_id.to_bytes(8, "big") if parent else b"",
                name=sdk_span.name,
                kind=sdk_span.kind.value + 1,  # the API's INTERNAL is 0, OTLP's is 1
                start_ns=sdk_span.start_time,
                end_ns=sdk_span.end_time,
                values=sdk_span.attributes or {},
                status_bytes=status(code, message),
                parent_is_remote=bool(parent and parent.is_remote),
            )
        except (TypeError, struct.error):
            return None  # an attribute that is not a scalar: the SDK's encoder writes it
        scopes[id(scope)][1].append(written)
    return request([(r, list(scopes.values())) for r, scopes in resources.values()])


class _Serialized:
    """What the HTTP exporter asks of an encoded request: its bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def SerializePartialToString(self) -> bytes:  # noqa: N802 - the protobuf method's name
        return self._data


class PreEncoded(list[Any]):
    """A batch whose request bytes are written already (`payload`), by a caller that knows
    its spans' shape (the control plane's run records); exporters count it as its items."""

    payload: bytes = b""


def install(module: Any) -> None:
    """Make an OTLP trace exporter module (`...proto.http.trace_exporter` or
    `...proto.grpc.trace_exporter`) send PreEncoded batches as they are and encode plain
    batches here; others as before. Both exporters encode through their module's
    `encode_spans` (HTTP in `export`, gRPC in `_translate_data`)."""
    library = module.encode_spans
    if getattr(library, "surefoot_bytes", False):
        return
    grpc = module.__name__.endswith(".grpc.trace_exporter")

    def encode_spans(spans: Sequence[Any]) -> Any:
        data = spans.payload if isinstance(spans, PreEncoded) else encode_request(spans)
        if data is None:
            return library(spans)
        if grpc:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                ExportTraceServiceRequest,
            )

            return ExportTraceServiceRequest.FromString(data)
        return _Serialized(data)

    encode_spans.surefoot_bytes = True  # type: ignore[attr-defined]
    module.encode_spans = encode_spans
