"""Fuzzing a server with an auth file as the holder of a viewer token, and with none at all.

A viewer of `default` may read there and nothing more: whatever write request it sends is
refused (PERMISSION_DENIED in its namespace, NOT_FOUND elsewhere, INVALID_ARGUMENT for a
request that does not even parse) and the database does not change by a single row, reads
included. Without a token, or with one the server does not know, every RPC is
UNAUTHENTICATED.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import Requests, fuzz_settings
from tests.fuzz.target import (
    METHODS,
    OK,
    READS,
    VIEWER_TOKEN,
    WRITES,
    Target,
    assert_accepted_or_refused,
    assert_unchanged,
    request_class,
    token_hash,
)
from tests.fuzz.test_fuzz_wire import hello

# What a write by a viewer may answer: never OK, never UNAUTHENTICATED (its token is good).
VIEWER_WRITE_REFUSALS = frozenset(
    {
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
VIEWER_READ_ANSWERS = VIEWER_WRITE_REFUSALS | {OK, grpc.StatusCode.FAILED_PRECONDITION}


@pytest.fixture(scope="module")
def viewer_requests(viewer: Target) -> Requests:
    return Requests(viewer.seeded)


@pytest.fixture
def nothing_written(viewer: Target) -> Iterator[None]:
    """A viewer writes nothing, whatever it sends: one fingerprint around a whole test."""
    before = viewer.database.settled()
    yield
    assert_unchanged(before, viewer.database.settled(), "a viewer's requests")


@pytest.mark.parametrize("method", sorted(WRITES))
@fuzz_settings(max_examples=30)
@given(data=st.data())
def test_a_viewer_cannot_write_whatever_it_sends(
    viewer: Target,
    viewer_requests: Requests,
    nothing_written: None,
    method: str,
    data: st.DataObject,
) -> None:
    request = data.draw(viewer_requests.of(method), label="request")
    before = viewer.fingerprint()
    code = viewer.call(method, request)
    what = f"{method}({request!r:.2000}) by a viewer"
    assert_accepted_or_refused(viewer, what, code, VIEWER_WRITE_REFUSALS)
    assert_unchanged(before, viewer.fingerprint(), what)


@pytest.mark.parametrize("method", READS)
@fuzz_settings(max_examples=20)
@given(data=st.data())
def test_a_viewer_reads_or_is_refused(
    viewer: Target,
    viewer_requests: Requests,
    nothing_written: None,
    method: str,
    data: st.DataObject,
) -> None:
    request = data.draw(viewer_requests.of(method), label="request")
    code = viewer.call(method, request)
    assert_accepted_or_refused(viewer, f"{method}({request!r:.2000})", code, VIEWER_READ_ANSWERS)


@pytest.mark.parametrize("method", sorted(WRITES))
def test_a_valid_write_by_a_viewer_is_permission_denied_in_its_namespace_and_not_found_elsewhere(
    viewer: Target, viewer_requests: Requests, nothing_written: None, method: str
) -> None:
    for base in viewer_requests.bases[method]:
        assert viewer.call(method, base) == grpc.StatusCode.PERMISSION_DENIED, base
        if "namespace" in base.DESCRIPTOR.fields_by_name:
            elsewhere = type(base)()
            elsewhere.CopyFrom(base)
            elsewhere.namespace = "payments"  # type: ignore[attr-defined]
            assert viewer.call(method, elsewhere) == grpc.StatusCode.NOT_FOUND, elsewhere


@pytest.mark.parametrize(
    "token",
    # No header; an empty token; an unknown one; the viewer's in capitals; and what the auth
    # file stores for it, which must not work as the token itself.
    [None, "", "wrong-token", VIEWER_TOKEN.upper(), token_hash(VIEWER_TOKEN)],
)
def test_without_a_valid_token_every_rpc_is_unauthenticated(
    viewer: Target, viewer_requests: Requests, nothing_written: None, token: str | None
) -> None:
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    anonymous = Target(viewer.control_plane, viewer.database, viewer.seeded, metadata)
    for method in METHODS:
        requests = viewer_requests.bases.get(method) or [request_class(method)()]
        for request in requests[:1]:
            code = anonymous.call(method, request)
            assert code == grpc.StatusCode.UNAUTHENTICATED, (method, token, code)
    code, received = anonymous.stream([hello("fuzz-anonymous", "fuzz-other").SerializeToString()])
    assert code == grpc.StatusCode.UNAUTHENTICATED and not received, (code, received)


def test_a_viewer_cannot_open_a_worker_stream(viewer: Target, nothing_written: None) -> None:
    code, received = viewer.stream([hello("fuzz-viewer", "fuzz-other").SerializeToString()])
    assert code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND), code
    assert not received
    viewer.assert_alive()
