"""Reading a request's JSON payload: the quick path for small plain JSON and the full path
accept and refuse exactly the same data, with the same values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from surefoot.v1 import common_pb2

from controlplane import errors
from controlplane.api import payloads
from controlplane.api.payloads import MAX_DEPTH, parse_json

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def outcome(data: bytes) -> tuple[str, Any]:
    try:
        return "ok", parse_json("input", common_pb2.Payload(encoding="json/plain", data=data))
    except errors.InvalidArgument as exc:
        return "refused", exc.violations


def full_path_outcome(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    with monkeypatch.context() as patched:
        patched.setattr(payloads, "_plainly_storable", lambda _: payloads._NOT_PLAIN)
        return outcome(data)


@settings(max_examples=300, derandomize=True)
@given(JSON_VALUES)
def test_both_paths_agree_on_json(value: Any) -> None:
    data = json.dumps(value).encode()
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert outcome(data) == full_path_outcome(data, monkeypatch)


@pytest.mark.parametrize(
    "data",
    [
        b"NaN",
        b"[1e400]",
        b"18446744073709551615",
        b"18446744073709551616",
        b"-9223372036854775808",
        b"-9223372036854775809",
        b'"\\ud800"',
        b'{"\\udc00": 1}',
        b"\xff",
        b"\xef\xbb\xbf{}",
        b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
        b"[" * MAX_DEPTH + b"1" + b"]" * MAX_DEPTH,
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
        b'{"a": 1, "a": 2}',
        b"not json",
    ],
)
def test_both_paths_agree_at_the_edges(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert outcome(data) == full_path_outcome(data, monkeypatch)
