"""Fuzzing every unary RPC of the API with requests built from its message descriptor.

Acceptance (issue 11): whatever a client sends, the server answers OK or a precise refusal,
never UNKNOWN or INTERNAL, stays up, and a refused request writes nothing (law 8). A write
request is checked one by one against a fingerprint of the whole database; read requests
write nothing at all, which is checked once around all of a method's examples.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from surefoot.v1 import common_pb2, definition_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.fuzz.conftest import Requests, fuzz_settings
from tests.fuzz.target import (
    OK,
    READS,
    WRITES,
    Target,
    assert_accepted_or_refused,
    assert_unchanged,
)


def send_write(target: Target, method: str, request: object) -> None:
    """One write request: accepted, or refused without a trace in the database."""
    before = target.fingerprint()
    code = target.call(method, request)  # type: ignore[arg-type]
    assert_accepted_or_refused(target, f"{method}({request!r:.2000})", code)
    if code == OK:
        # What it set in motion settles before the next request is judged.
        target.database.settled()
    else:
        assert_unchanged(before, target.fingerprint(), f"{method}({request!r:.2000})")


@pytest.mark.parametrize("method", sorted(WRITES))
@fuzz_settings(max_examples=110)
@given(data=st.data())
def test_a_write_request_is_accepted_or_refused_and_a_refusal_writes_nothing(
    trusting: Target, requests: Requests, method: str, data: st.DataObject
) -> None:
    send_write(trusting, method, data.draw(requests.of(method), label="request"))


@pytest.fixture
def nothing_written(trusting: Target) -> Iterator[None]:
    before = trusting.database.settled()
    yield
    assert_unchanged(before, trusting.fingerprint(), "a read request")


@pytest.mark.parametrize("method", READS)
@fuzz_settings(max_examples=50)
@given(data=st.data())
def test_a_read_request_is_answered_or_refused_and_writes_nothing(
    trusting: Target,
    requests: Requests,
    nothing_written: None,
    method: str,
    data: st.DataObject,
) -> None:
    request = data.draw(requests.of(method), label="request")
    code = trusting.call(method, request)
    assert_accepted_or_refused(trusting, f"{method}({request!r:.2000})", code)


# Inputs that once broke a handler, or sit right at a limit: each must stay a refusal.
REGRESSIONS: list[tuple[str, object]] = [
    # Past grpc's 4 MiB receive limit.
    (
        "WorkflowService.StartRun",
        ws.StartRunRequest(workflow_name="fuzz-task", request_id="x" * (5 << 20)),
    ),
    (
        "WorkflowService.StartRun",
        ws.StartRunRequest(
            workflow_name="fuzz-task",
            input=common_pb2.Payload(encoding="json/plain", data=b"[" * 100_000),
        ),
    ),
    (
        "WorkflowService.RegisterDefinition",
        ws.RegisterDefinitionRequest(
            definition=definition_pb2.WorkflowDefinition(name="n", version="1")
        ),
    ),
]


@pytest.mark.parametrize(("method", "request_"), REGRESSIONS, ids=lambda v: str(v)[:40])
def test_known_hard_requests_are_refused_and_write_nothing(
    trusting: Target, method: str, request_: object
) -> None:
    before = trusting.database.settled()
    code = trusting.call(method, request_)  # type: ignore[arg-type]
    assert code != OK, f"{method} accepted {request_!r:.300}"
    assert_accepted_or_refused(trusting, method, code)
    assert_unchanged(before, trusting.fingerprint(), method)
    trusting.assert_alive()
