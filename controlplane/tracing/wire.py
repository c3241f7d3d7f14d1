"""OTLP protobuf bytes of the control plane's own spans (runs, attempts, waits), written
directly.

The SDK's encoder builds a message object per span, attribute and value in Python: about
45 µs a span, a third of what tracing cost `surefoot bench`. These spans have a fixed shape
(no events, no links, string, integer and boolean attributes), so their bytes are written
here, several times faster, and the exporters parse the request once in C
(`ExportTraceServiceRequest.FromString`). tests/telemetry/test_wire.py holds the bytes to
what the SDK's encoder makes of the same spans.

Field numbers: opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

_LENGTH = 2  # wire type of strings, bytes and messages
_FIXED64 = struct.Struct("<Q")
_DOUBLE = struct.Struct("<d")
_HAS_IS_REMOTE = struct.pack("<I", 0x100)  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_KEYS: dict[str, bytes] = {}  # attribute key -> its encoded KeyValue.key field


def varint(value: int) -> bytes:
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
    return varint(number << 3 | _LENGTH) + varint(len(data)) + data


def _key(key: str) -> bytes:
    found = _KEYS.get(key)
    if found is None:
        found = _KEYS[key] = field(1, key.encode())
    return found


def _value(value: Any) -> bytes:
    """An AnyValue's bytes."""
    if isinstance(value, str):
        return field(1, value.encode())
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    return field(1, str(value).encode())


def attributes(values: Mapping[str, Any], number: int) -> bytes:
    """Repeated KeyValue field `number`."""
    return b"".join(field(number, _key(k) + field(2, _value(v))) for k, v in values.items())


def span(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    values: Mapping[str, Any],
    status_code: int,
    status_message: str,
) -> bytes:
    """A Span's bytes (ids as hex)."""
    parts = [field(1, bytes.fromhex(trace_id)), field(2, bytes.fromhex(span_id))]
    if parent_span_id:
        parts.append(field(4, bytes.fromhex(parent_span_id)))
    parts.append(field(5, name.encode()))
    parts.append(b"\x30" + varint(kind))  # 6: kind
    parts.append(b"\x39" + _FIXED64.pack(start_ns))  # 7: start_time_unix_nano
    parts.append(b"\x41" + _FIXED64.pack(end_ns))  # 8: end_time_unix_nano
    parts.append(attributes(values, 9))
    status = b""
    if status_message:
        status += field(2, status_message.encode())
    if status_code:
        status += b"\x18" + varint(status_code)  # 3: code
    parts.append(field(15, status))
    # 16: flags (fixed32): whether the parent is remote is known (it is local), as the SDK's.
    parts.append(b"\x85\x01" + _HAS_IS_REMOTE)
    return b"".join(parts)


def request(resource: bytes, scope: bytes, spans: Iterable[bytes]) -> bytes:
    """An ExportTraceServiceRequest's bytes: one resource, one scope, these spans.

    `resource` and `scope` are a Resource's and an InstrumentationScope's own bytes."""
    scope_spans = field(1, scope) + b"".join(field(2, s) for s in spans)
    return field(1, field(1, resource) + field(2, scope_spans))
