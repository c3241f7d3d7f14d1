"""Payload encoding: json/plain both ways, and what is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from surefoot.v1 import common_pb2
from surefoot_worker._payload import decode_json, encode_json

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_round_trip(value: Any) -> None:
    payload = encode_json(value)
    assert payload.encoding == "json/plain"
    assert decode_json(common_pb2.Payload.FromString(payload.SerializeToString())) == value


def test_encoding_is_utf8_json() -> None:
    payload = encode_json({"name": "Zoë", "n": [1, 2]})
    assert json.loads(payload.data.decode("utf-8")) == {"name": "Zoë", "n": [1, 2]}
    assert "Zoë".encode() in payload.data


def test_empty_encoding_is_read_as_json() -> None:
    assert decode_json(common_pb2.Payload(encoding="", data=b'{"a": 1}')) == {"a": 1}


def test_missing_or_empty_payload_is_none() -> None:
    assert decode_json(None) is None
    assert decode_json(common_pb2.Payload()) is None


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="encoding"):
        decode_json(common_pb2.Payload(encoding="avro/binary", data=b"\x00\x01"))


@pytest.mark.parametrize("data", [b"{not json", b"\xff\xfe"])
def test_invalid_json_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_json(common_pb2.Payload(encoding="json/plain", data=data))


@pytest.mark.parametrize("value", [{1, 2}, object(), float("nan"), {"x": float("inf")}])
def test_values_that_are_not_json_are_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        encode_json(value)
