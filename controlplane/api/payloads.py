"""Reading the JSON a request carries in a Payload, or refusing it with the field at fault.

Only JSON the store can keep is accepted: the committer writes it with orjson, which refuses
integers beyond 64 bits, lone surrogates and nesting past 255 levels (and a run's state nests
a payload a few levels deeper still).
"""

from __future__ import annotations

import json
import re
from typing import Any

import grpc
import orjson
from surefoot.v1 import common_pb2

from controlplane import errors

JSON_ENCODING = "json/plain"
MAX_DEPTH = 128
_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1


async def json_value(
    context: grpc.aio.ServicerContext, field: str, value: common_pb2.Payload, empty: Any = None
) -> Any:
    """The decoded JSON of `value`; `empty` when it carries no data (see `parse_json`)."""
    return parse_json(field, value, empty)


def parse_json(field: str, value: common_pb2.Payload, empty: Any = None) -> Any:
    """The decoded JSON of `value`; `empty` when it carries no data.

    Raises InvalidArgument naming `<field>.encoding` for an encoding other than JSON, and
    `<field>.data` for data that is not JSON or that the store cannot keep.
    """
    if value.encoding not in ("", JSON_ENCODING):
        raise errors.InvalidArgument.field(
            f"{field}.encoding", f"unsupported encoding {value.encoding!r}"
        )
    if not value.data:
        return empty
    where = f"{field}.data"
    fast = _plainly_storable(value.data)
    if fast is not _NOT_PLAIN:
        return fast
    try:
        decoded = json.loads(value.data.decode("utf-8"))
    except RecursionError:
        raise errors.InvalidArgument.field(
            where, f"is nested more than {MAX_DEPTH} levels deep"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        # ValueError also covers integers longer than Python converts (4300 digits).
        raise errors.InvalidArgument.field(where, f"is not valid JSON: {exc}") from None
    problem = unstorable(decoded)
    if problem:
        raise errors.InvalidArgument.field(where, problem)
    return decoded


_NOT_PLAIN = object()
# A 64-bit integer has at most 20 digits, 19 when negative: a longer run of digits may be one
# that orjson would read as a float rather than refuse (a fraction's digits only cost the
# slow path).
_LONG_DIGITS = re.compile(rb"\d{19}")
# Nesting deeper than MAX_DEPTH needs an opening and a closing bracket per level.
_SHALLOW_BYTES = 2 * MAX_DEPTH + 1


def _plainly_storable(data: bytes) -> Any:
    """The decoded JSON when it is plainly storable, else _NOT_PLAIN (decide the slow way).

    Most payloads are small, plain JSON: orjson reads them several times faster than the
    standard library, refuses invalid UTF-8 and lone surrogates itself, and data this short
    with no long run of digits can neither nest too deep nor hold an integer beyond 64 bits,
    so nothing is left to walk. Anything else (NaN, which the standard library reads, an
    error to report) takes the full path, so what is accepted and refused does not change.
    """
    if len(data) >= _SHALLOW_BYTES or _LONG_DIGITS.search(data):
        return _NOT_PLAIN
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _NOT_PLAIN


def unstorable(value: Any) -> str:
    """Why the store cannot keep this decoded JSON value, or "" when it can."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            return f"is nested more than {MAX_DEPTH} levels deep"
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            if not _MIN_INT <= item <= _MAX_INT:
                return f"holds an integer beyond 64 bits ({str(item)[:20]}...)"
        elif isinstance(item, str):
            if not _is_utf8(item):
                return "holds a string with a lone surrogate (not valid Unicode)"
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _is_utf8(key):
                    return "holds a key with a lone surrogate (not valid Unicode)"
                pending.append((child, depth + 1))
    return ""


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
