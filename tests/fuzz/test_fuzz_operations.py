"""Fuzzing OperationService and WorkerAdminService on a server and database of their own.

Every mutated request (generated from nothing, a valid one with fields changed, or damaged
bytes) gets a precise status: OK or a refusal, never UNKNOWN or INTERNAL (a handler that
broke), DEADLINE_EXCEEDED (a hang; a watch must answer its first message in time) or
UNAVAILABLE (the process died). A refused write changes nothing in the database (law 8); an
accepted one may start a real redrive, which is cancelled at once so that nothing is retried
on a timer while the next request is judged. A viewer writes nothing, whatever it sends.
The server answers its health check throughout and exits cleanly at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import worker_admin_service_pb2 as wapb

from controlplane.store.worker_sessions import encode_token
from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.messages import MessageStrategies, odd_strings
from tests.fuzz.operations_target import (
    METHODS,
    READS,
    WRITES,
    OperationsSeeded,
    answer,
    call,
    cancel_started,
    quiet,
    request_class,
    seed_operations,
)
from tests.fuzz.target import (
    ADMIN_TOKEN,
    OK,
    VIEWER_TOKEN,
    WORKER_TOKEN,
    Target,
    assert_accepted_or_refused,
    assert_unchanged,
    bearer,
    fuzz_target,
)
from tests.fuzz.test_fuzz_wire import WIRE_TRAPS, damaged
from tests.support.processes import PROCESSES

ADMIN = bearer(ADMIN_TOKEN)
VIEWER = bearer(VIEWER_TOKEN)
# What a viewer's write may answer: never OK (nor UNAUTHENTICATED: its token is good).
VIEWER_WRITE_REFUSALS = frozenset(
    {
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
VIEWER_READ_ANSWERS = VIEWER_WRITE_REFUSALS | {OK, grpc.StatusCode.FAILED_PRECONDITION}


class OperationsFuzz:
    """The seeded server, and requests of its methods aimed at what it holds."""

    def __init__(self, target: Target, seeded: OperationsSeeded) -> None:
        self.target = target
        self.seeded = seeded
        tokens = st.tuples(odd_strings() | st.text(max_size=8), odd_strings()).map(
            lambda pair: encode_token(*pair)
        )
        self.messages = MessageStrategies(
            seeded.known,
            # Page tokens of the workers' listing that decode, holding odd ids.
            {
                "surefoot.v1.ListWorkersRequest.page_token": tokens
                | st.sampled_from(seeded.known["page_token"])
            },
        )

    def of(self, method: str) -> st.SearchStrategy[Message]:
        anything = self.messages.of(request_class(method))
        bases = self.seeded.bases.get(method)
        if not bases:
            return anything
        return anything | self.messages.near(bases) | self.messages.near(bases)

    def settle_after(self, code: grpc.StatusCode) -> None:
        """After an accepted write: what it started is cancelled, and all is quiet."""
        if code == OK:
            cancel_started(self.target, self.seeded, ADMIN)
            quiet(self.target)


@pytest.fixture(scope="module")
def operations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperationsFuzz]:
    """A server of its own, with an auth file: fuzzed as its admin, then as a viewer."""
    directory = tmp_path_factory.mktemp("fuzz-operations")
    with fuzz_target(directory, auth=True, metadata=ADMIN) as target:
        yield OperationsFuzz(target, seed_operations(target, ADMIN, bearer(WORKER_TOKEN)))


@pytest.fixture(autouse=True)
def _show_server_output_on_failure(
    request: pytest.FixtureRequest, operations: OperationsFuzz
) -> None:
    request.node.stash[PROCESSES] = operations.target.control_plane.registry


@pytest.fixture
def nothing_written(operations: OperationsFuzz) -> Iterator[None]:
    """Reads write nothing: one fingerprint around a whole test, once all is quiet."""
    quiet(operations.target)
    before = operations.target.fingerprint()
    yield
    assert_unchanged(before, operations.target.fingerprint(), "read requests")


def test_the_valid_requests_the_fuzz_mutates_are_accepted(operations: OperationsFuzz) -> None:
    """Mutations of these reach the code past every check: each is accepted as it is (a
    real start may find what it selects acted on by an earlier test already)."""
    for method, bases in sorted(operations.seeded.bases.items()):
        for base in bases:
            code, _ = call(operations.target, method, base)
            allowed = {OK}
            if method.partition(".")[2].startswith("Start"):
                allowed.add(grpc.StatusCode.FAILED_PRECONDITION)
            assert code in allowed, f"{method}({base!r:.500}) answered {code.name}"
            if method in WRITES:
                operations.settle_after(code)


@pytest.mark.parametrize("method", WRITES)
@fuzz_settings(max_examples=100)
@given(data=st.data())
def test_a_write_is_answered_precisely_and_a_refusal_writes_nothing(
    operations: OperationsFuzz, method: str, data: st.DataObject
) -> None:
    target = operations.target
    request = data.draw(operations.of(method), label="request")
    before = target.fingerprint()
    code, _ = call(target, method, request)
    what = f"{method}({request!r:.2000})"
    assert_accepted_or_refused(target, what, code)
    if code == OK:
        operations.settle_after(code)
    else:
        assert_unchanged(before, target.fingerprint(), what)


@pytest.mark.parametrize("method", READS)
@fuzz_settings(max_examples=60)
@given(data=st.data())
def test_a_read_is_answered_precisely_and_writes_nothing(
    operations: OperationsFuzz, nothing_written: None, method: str, data: st.DataObject
) -> None:
    request = data.draw(operations.of(method), label="request")
    code, _ = call(operations.target, method, request)
    assert_accepted_or_refused(operations.target, f"{method}({request!r:.2000})", code)


@fuzz_settings(max_examples=200)
@given(data=st.data())
def test_damaged_bytes_are_answered_precisely(
    operations: OperationsFuzz, data: st.DataObject
) -> None:
    target = operations.target
    method = data.draw(st.sampled_from(sorted(METHODS)), label="method")
    valid = data.draw(operations.of(method), label="request").SerializeToString()
    body = data.draw(
        st.binary(max_size=256) | st.sampled_from(WIRE_TRAPS) | damaged(valid), label="body"
    )
    before = target.fingerprint()
    code, _ = call(target, method, body)
    what = f"{method} with body {body[:300]!r}"
    assert_accepted_or_refused(target, what, code)
    if code == OK and method in WRITES:
        operations.settle_after(code)
    else:
        # A refusal, or a read: nothing written.
        assert_unchanged(before, target.fingerprint(), what)


@pytest.mark.parametrize("method", WRITES)
@fuzz_settings(max_examples=30)
@given(data=st.data())
def test_a_viewer_writes_nothing_whatever_it_sends(
    operations: OperationsFuzz, method: str, data: st.DataObject
) -> None:
    target = operations.target
    request = data.draw(operations.of(method), label="request")
    before = target.fingerprint()
    code, _ = call(target, method, request, VIEWER)
    what = f"{method}({request!r:.2000}) by a viewer"
    assert_accepted_or_refused(target, what, code, VIEWER_WRITE_REFUSALS)
    assert_unchanged(before, target.fingerprint(), what)


@pytest.mark.parametrize("method", READS)
@fuzz_settings(max_examples=20)
@given(data=st.data())
def test_a_viewer_reads_or_is_refused(
    operations: OperationsFuzz, nothing_written: None, method: str, data: st.DataObject
) -> None:
    request = data.draw(operations.of(method), label="request")
    code, _ = call(operations.target, method, request, VIEWER)
    what = f"{method}({request!r:.2000}) by a viewer"
    assert_accepted_or_refused(operations.target, what, code, VIEWER_READ_ANSWERS)


# What the fuzz found once: each is refused naming its field, and writes nothing.
HUGE_ID = "x" * 70_000
REGRESSIONS: list[tuple[str, Message, str]] = [
    # A page token that decodes, with a NUL in an id: the database refused the query.
    (
        "WorkerAdminService.ListWorkers",
        wapb.ListWorkersRequest(page_token=encode_token("w\x00", "s")),
        "page_token",
    ),
    # A NOT_FOUND echoing a 70,000-character id was too big for the client's metadata
    # limit: the caller got a transport error instead of the answer.
    (
        "OperationService.GetOperation",
        opb.GetOperationRequest(operation_id=HUGE_ID),
        "operation_id",
    ),
    (
        "OperationService.WatchOperation",
        opb.WatchOperationRequest(operation_id=HUGE_ID),
        "operation_id",
    ),
    (
        "OperationService.CancelOperation",
        opb.CancelOperationRequest(operation_id=HUGE_ID),
        "operation_id",
    ),
    (
        "OperationService.ListOperationItems",
        opb.ListOperationItemsRequest(operation_id=HUGE_ID),
        "operation_id",
    ),
]


@pytest.mark.parametrize(
    ("method", "request_", "field"), REGRESSIONS, ids=[r[0] for r in REGRESSIONS]
)
def test_requests_the_fuzz_found_are_refused_naming_the_field(
    operations: OperationsFuzz, method: str, request_: Message, field: str
) -> None:
    target = operations.target
    before = target.database.settled()
    outcome = answer(target, method, request_)
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, outcome
    assert outcome.details.startswith(f"{field}: "), outcome.details
    assert_unchanged(before, target.fingerprint(), method)


def test_the_server_is_healthy_after_the_fuzz(operations: OperationsFuzz) -> None:
    operations.target.assert_alive()
    for method, bases in sorted(operations.seeded.bases.items()):
        if method in READS:
            code, _ = call(operations.target, method, bases[0])
            assert code == OK, f"{method} after the fuzz: {code.name}"
