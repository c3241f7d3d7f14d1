"""Reading the JSON a request carries in a Payload, or refusing it with the field at fault.

Only JSON the store can keep is accepted: the committer writes it with orjson, which refuses
integers beyond 64 bits, lone surrogates and nesting past 255 levels (and a run's state nests
a payload a few levels deeper still).
"""

from __future__ import annotations

import json
from typing import Any

import grpc
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
