"""Triage decisions are human actions (law 7) and bad requests change nothing (law 8).

The control plane of this file knows bearer tokens (support/approval_auth.py): a retry,
skip or redrive without a known token is UNAUTHENTICATED, and the principal in the history
is the token's. Every refused request leaves the run's status, history and dead letter as
they were.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from surefoot.v1 import common_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.e2e_triage.triage_support import (
    DECLINED,
    POSTGRES_ONLY,
    Capture,
    cli,
    dead_letters,
    one_attempt_b,
    snapshot,
    wait_all,
)
from tests.support.approval_auth import ALICE, BOB, CAROL, AuthControlPlane, bearer, write_auth_file
from tests.support.processes import ProcessRegistry, StartWorker
from tests.support.runs import (
    events_of,
    history,
    json_payload,
    register,
    start_run,
    wait_for_status,
)
from tests.support.waits import field_violations, refusal


@pytest.fixture
def control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    """`surefoot server --auth-file`; replaces tests/conftest.py's for this file, so that the
    `worker` fixture connects to it. Its `stub` acts as the operator (ops)."""
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    exit_code = server.stop()
    assert exit_code in (0, None), f"the control plane exited with {exit_code} on SIGTERM"


@POSTGRES_ONLY  # who decides is the API's business, the same on both stores
def test_decisions_need_a_token_and_carry_its_principal(
    control_plane: AuthControlPlane, worker: StartWorker, capsys: Capture
) -> None:
    stub, anonymous = control_plane.stub, control_plane.anonymous_stub
    register(stub, one_attempt_b("auth-triage"))
    worker()
    by_alice = start_run(stub, "auth-triage", DECLINED)
    by_bob = start_run(stub, "auth-triage", DECLINED)
    by_carol = start_run(stub, "auth-triage", DECLINED)
    wait_all(stub, [by_alice, by_bob, by_carol], "NEEDS_ATTENTION")
    before = snapshot(stub, by_alice)

    # Reading needs a token (any role in the namespace), and so does deciding.
    assert refusal(lambda: dead_letters(anonymous)).code() == grpc.StatusCode.UNAUTHENTICATED
    assert {d.run_id for d in dead_letters(stub)} == {by_alice, by_bob, by_carol}
    retry = ws.RetryStepRequest(run_id=by_alice, node_id="b")
    skip = ws.SkipStepRequest(run_id=by_alice, node_id="b", output=json_payload({}))
    redrive = ws.RedriveDeadLettersRequest(filter=ws.DeadLetterFilter(workflow_name="auth-triage"))
    for call in (
        lambda: anonymous.RetryStep(retry, timeout=30),
        lambda: anonymous.SkipStep(skip, timeout=30),
        lambda: anonymous.RedriveDeadLetters(redrive, timeout=30),
        lambda: anonymous.RetryStep(retry, timeout=30, metadata=bearer("no-such-token")),
    ):
        assert refusal(call).code() == grpc.StatusCode.UNAUTHENTICATED
    assert snapshot(stub, by_alice) == before

    stub.RetryStep(
        ws.RetryStepRequest(run_id=by_alice, node_id="b", input=json_payload({"trail": ["a"]})),
        timeout=30,
        metadata=bearer(ALICE),
    )
    # The CLI sends --token the same way.
    code, out, err = cli(
        control_plane,
        capsys,
        "deadletters",
        "skip",
        by_bob,
        "b",
        "--output",
        '{"trail": ["a", "b"]}',
        "--comment",
        "done by hand",
        "--token",
        BOB,
    )
    assert (code, err) == (0, ""), err
    assert out.startswith(f"skipped b of {by_bob}: run ")
    # Carol redrives what is left of the incident (her run), with input as it was.
    redriven = stub.RedriveDeadLetters(redrive, timeout=30, metadata=bearer(CAROL))
    assert (redriven.retried, redriven.remaining) == (1, 0)
    wait_all(stub, [by_alice, by_bob], "COMPLETED")
    wait_for_status(stub, by_carol, "NEEDS_ATTENTION")  # still declined: a second dead letter

    [retried] = events_of(history(stub, by_alice), "STEP_RETRIED", "b")
    assert (retried.principal, retried.attempt) == ("alice", 2)
    assert retried.data["error"]["type"] == "CardDeclined"
    [skipped] = events_of(history(stub, by_bob), "STEP_SKIPPED", "b")
    assert (skipped.principal, skipped.data["comment"]) == ("bob", "done by hand")
    [redriven_event] = events_of(history(stub, by_carol), "STEP_RETRIED", "b")
    assert (redriven_event.principal, redriven_event.attempt) == ("carol", 2)


def test_bad_requests_are_refused_precisely_and_change_nothing(
    control_plane: AuthControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, one_attempt_b("refused-triage"))
    worker()
    dead = start_run(stub, "refused-triage", DECLINED)
    done = start_run(stub, "refused-triage", {"trail": []})
    wait_for_status(stub, dead, "NEEDS_ATTENTION")
    wait_for_status(stub, done, "COMPLETED")
    before = {run_id: snapshot(stub, run_id) for run_id in (dead, done)}
    assert before[dead].dead_letters == (("b", "CardDeclined", 1),)

    def code_of(call: Callable[[], object]) -> grpc.StatusCode:
        return refusal(call).code()

    def retry(**fields: object) -> Callable[[], object]:
        return lambda: stub.RetryStep(ws.RetryStepRequest(**fields), timeout=30)  # type: ignore[arg-type]

    def skip(**fields: object) -> Callable[[], object]:
        return lambda: stub.SkipStep(ws.SkipStepRequest(**fields), timeout=30)  # type: ignore[arg-type]

    output = json_payload({"trail": ["a", "b"]})
    unknown = str(uuid.uuid4())
    assert code_of(retry(run_id=unknown, node_id="b")) == grpc.StatusCode.NOT_FOUND
    assert code_of(skip(run_id=unknown, node_id="b", output=output)) == grpc.StatusCode.NOT_FOUND
    # A run is found only in its own namespace.
    assert code_of(retry(namespace="other", run_id=dead, node_id="b")) == (
        grpc.StatusCode.NOT_FOUND
    )

    # Not the step the run waits on an operator for: an earlier one, an unknown one.
    for node_id in ("a", "c", "nope"):
        error = refusal(retry(run_id=dead, node_id=node_id))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, node_id
        assert error.details() == (
            f"step {node_id!r} of run {dead} is not its dead letter (that is 'b')"
        )
    assert code_of(skip(run_id=dead, node_id="a", output=output)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    # A run that does not need attention has no dead letter.
    for call in (retry(run_id=done, node_id="b"), skip(run_id=done, node_id="b", output=output)):
        error = refusal(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error.details() == (
            f"run {done} is COMPLETED: only a run that needs attention has a dead letter to "
            "retry or skip"
        )

    # Malformed requests: INVALID_ARGUMENT naming the field.
    not_json = common_pb2.Payload(encoding="json/plain", data=b"{not json")
    xml = common_pb2.Payload(encoding="application/xml", data=b"<a/>")
    for call, field in (
        (retry(run_id=dead, node_id="b", input=not_json), "input.data"),
        (retry(run_id=dead, node_id="b", input=xml), "input.encoding"),
        (retry(namespace="Not A Namespace", run_id=dead, node_id="b"), "namespace"),
        (retry(run_id="", node_id="b"), "run_id"),
        (retry(run_id=dead, node_id=""), "node_id"),
        (retry(run_id=dead, node_id="b", comment="x" * 2001), "comment"),
        (skip(run_id=dead, node_id="b"), "output"),
        (skip(run_id=dead, node_id="b", output=not_json), "output.data"),
    ):
        error = refusal(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert [f for f, _ in field_violations(error)] == [field]

    def listing(**fields: object) -> Callable[[], object]:
        request = ws.ListDeadLettersRequest(**fields)  # type: ignore[arg-type]
        return lambda: stub.ListDeadLetters(request, timeout=30)

    def redrive(**fields: object) -> Callable[[], object]:
        request = ws.RedriveDeadLettersRequest(**fields)  # type: ignore[arg-type]
        return lambda: stub.RedriveDeadLetters(request, timeout=30)

    everything = ws.DeadLetterFilter()
    incident = ws.DeadLetterFilter(workflow_name="refused-triage")
    for call, field in (
        (listing(page_size=-1), "page_size"),
        (listing(page_size=1001), "page_size"),
        (listing(page_size=1001, grouped=True), "page_size"),
        (listing(page_token="not-a-token"), "page_token"),
        (redrive(filter=everything), "filter"),
        (redrive(filter=incident, limit=10_001), "limit"),
        (redrive(filter=incident, limit=-1), "limit"),
        (redrive(filter=incident, comment="x" * 2001), "comment"),
    ):
        error = refusal(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert [f for f, _ in field_violations(error)] == [field]

    for run_id in (dead, done):
        assert snapshot(stub, run_id) == before[run_id]
    # A filter that matches nothing is no error: nothing to retry.
    nothing = stub.RedriveDeadLetters(
        ws.RedriveDeadLettersRequest(filter=ws.DeadLetterFilter(error_type="NoSuchError")),
        timeout=30,
    )
    assert (nothing.retried, nothing.remaining) == (0, 0)
    assert snapshot(stub, dead) == before[dead]
