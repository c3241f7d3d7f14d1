"""Reading the JSON a request carries in a Payload, or refusing it with the field at fault."""

from __future__ import annotations

import json
from typing import Any

import grpc
from surefoot.v1 import common_pb2

from controlplane.api.errors import invalid_field

JSON_ENCODING = "json/plain"


async def json_value(
    context: grpc.aio.ServicerContext, field: str, value: common_pb2.Payload, empty: Any = None
) -> Any:
    """The decoded JSON of `value`; `empty` when it carries no data.

    Refuses (INVALID_ARGUMENT, naming `<field>.encoding` or `<field>.data`) an encoding other
    than JSON and data that is not JSON.
    """
    if value.encoding not in ("", JSON_ENCODING):
        await invalid_field(
            context, f"{field}.encoding", f"unsupported encoding {value.encoding!r}"
        )
    if not value.data:
        return empty
    try:
        return json.loads(value.data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        await invalid_field(context, f"{field}.data", f"is not valid JSON: {exc}")
