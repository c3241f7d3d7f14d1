"""Encoding of step inputs, outputs and heartbeat details as Payload messages."""

from __future__ import annotations

import json
from typing import Any

from surefoot.v1 import common_pb2

JSON_ENCODING = "json/plain"

# Built once: json.dumps with non-default options builds a new encoder on every call, which
# shows up on the worker's per-task path.
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_decoder = json.JSONDecoder()


def encode_json(value: Any) -> common_pb2.Payload:
    """Encode a value as a ``json/plain`` payload.

    NaN and infinities are refused because they are not JSON and other languages' workers
    and the console could not read them back.

    Args:
        value: Anything ``json.dumps`` accepts (dicts, lists, strings, numbers, bools, None).

    Returns:
        The payload, UTF-8 JSON bytes tagged ``json/plain``.

    Raises:
        TypeError: If the value cannot be represented as JSON.
    """
    return common_pb2.Payload(encoding=JSON_ENCODING, data=encode_json_bytes(value))


def encode_json_bytes(value: Any) -> bytes:
    """The UTF-8 JSON bytes of a ``json/plain`` payload; see :func:`encode_json`.

    Raises:
        TypeError: If the value cannot be represented as JSON.
    """
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError) as exc:
        # ValueError covers NaN and circular references; callers handle one exception type.
        raise TypeError(str(exc)) from exc
    return text.encode("utf-8")


def decode_json(payload: common_pb2.Payload | None) -> Any:
    """Decode a payload written by :func:`encode_json` (or any JSON writer).

    An empty encoding is read as ``json/plain``, and an empty payload as ``None``, because
    proto3 cannot tell an unset message from an empty one.

    Args:
        payload: The payload, or ``None`` when the message field was not set.

    Returns:
        The decoded value.

    Raises:
        ValueError: If the encoding is not JSON or the bytes are not valid UTF-8 JSON.
    """
    if payload is None or not payload.data:
        return None
    if payload.encoding not in ("", JSON_ENCODING):
        raise ValueError(f"unsupported payload encoding {payload.encoding!r}")
    try:
        return _decoder.decode(payload.data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"payload is not valid JSON: {exc}") from exc
