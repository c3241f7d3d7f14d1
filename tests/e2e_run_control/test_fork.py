"""ForkRun: a new run of the same version that reuses its parent's outputs before a node.

Forked from node c of a four-step run, the fork executes c and d only (the execution log of
the workers says so), with c's input derived from the parent's recorded b output and new
idempotency keys; the parent's history and state are untouched; each links to the other.
"""

from __future__ import annotations

from surefoot.v1 import common_pb2, run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import row_counts
from tests.e2e_run_control.control_support import four_steps, refused
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    json_payload,
    payload_value,
    register,
    start_run,
    wait_for_status,
)


def test_a_fork_from_node_c_executes_c_onward_only(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, four_steps("forked"))
    worker()
    parent_id = start_run(stub, "forked", {"trail": ["start"]})
    parent = wait_for_status(stub, parent_id, "COMPLETED")
    parent_events = history(stub, parent_id)

    response = stub.ForkRun(
        ws.ForkRunRequest(run_id=parent_id, from_node="c", comment="replay c with the fix"),
        timeout=30,
    )
    assert response.created and list(response.reused_nodes) == ["a", "b"]
    fork_id = response.run.id
    assert fork_id != parent_id
    assert response.run.forked_from.run_id == parent_id
    assert response.run.forked_from.node_id == "c"
    fork = wait_for_status(stub, fork_id, "COMPLETED")

    # Only c and d ran again, each once, with new keys; c read the parent's b output.
    assert [e.node_id for e in execution_log.started(fork_id)] == ["c", "d"]
    assert [e.node_id for e in execution_log.started(parent_id)] == ["a", "b", "c", "d"]
    (c_run,) = execution_log.started(fork_id, "c")
    (parent_c,) = execution_log.started(parent_id, "c")
    assert c_run.input == parent_c.input
    assert c_run.idempotency_key != parent_c.idempotency_key
    assert payload_value(fork.output) == payload_value(parent.output)
    steps = {s.node_id: s for s in fork.steps}
    parent_steps = {s.node_id: s for s in parent.steps}
    for node in ("a", "b"):
        assert steps[node].status == run_pb2.STEP_STATUS_COMPLETED
        assert payload_value(steps[node].output) == payload_value(parent_steps[node].output)
        assert not steps[node].attempts
    assert {s.idempotency_key for s in fork.steps}.isdisjoint(
        {s.idempotency_key for s in parent.steps}
    )

    events = history(stub, fork_id)
    assert_history_well_formed(events)
    assert events[0].data["forked_from"] == {"run_id": parent_id, "node_id": "c"}
    assert events[0].data["comment"] == "replay c with the fix"
    assert [e.node_id for e in events_of(events, "STEP_REUSED")] == ["a", "b"]
    assert not events_of(events, "STEP_SCHEDULED", "a")
    assert not events_of(events, "STEP_SCHEDULED", "b")

    # The parent is untouched, and links to its fork.
    assert history(stub, parent_id) == parent_events
    again = get_run(stub, parent_id)
    assert [(s.node_id, s.status, s.attempt) for s in again.steps] == [
        (s.node_id, s.status, s.attempt) for s in parent.steps
    ]
    assert [(f.run_id, f.node_id) for f in again.forks] == [(fork_id, "c")]
    assert again.forks[0].principal and again.forks[0].HasField("created_at")
    assert not again.HasField("forked_from")
    assert get_run(stub, fork_id).forked_from.run_id == parent_id


def test_a_fork_with_another_input_and_a_request_id(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, four_steps("forked-input"))
    worker()
    parent_id = start_run(stub, "forked-input", {"trail": []})
    wait_for_status(stub, parent_id, "COMPLETED")
    request = ws.ForkRunRequest(
        run_id=parent_id,
        from_node="a",
        input_override=json_payload({"trail": ["edited"]}),
        request_id="fork-1",
    )
    first = stub.ForkRun(request, timeout=30)
    assert first.created and not first.reused_nodes
    fork = wait_for_status(stub, first.run.id, "COMPLETED")
    assert payload_value(fork.output)["trail"] == ["edited", "a", "b", "c", "d"]
    assert payload_value(fork.input) == {"trail": ["edited"]}

    # The same request id answers the same fork and starts nothing more.
    before = row_counts(control_plane.database_url)
    second = stub.ForkRun(request, timeout=30)
    assert not second.created and second.run.id == first.run.id
    assert row_counts(control_plane.database_url) == before
    assert [(f.run_id, f.node_id) for f in get_run(stub, parent_id).forks] == [(first.run.id, "a")]


def test_refusals_write_nothing(control_plane: ControlPlane) -> None:
    stub = control_plane.stub
    register(stub, four_steps("fork-refused"))
    # No worker: the run waits at a, and never entered b.
    parent_id = start_run(stub, "fork-refused", {"trail": []})
    other = start_run(stub, "fork-refused", {"trail": []}, request_id="taken")
    url = control_plane.database_url
    for request, code, text in [
        (ws.ForkRunRequest(from_node="a"), "INVALID_ARGUMENT", "run_id:"),
        (ws.ForkRunRequest(run_id=parent_id), "INVALID_ARGUMENT", "from_node:"),
        (ws.ForkRunRequest(run_id=parent_id, from_node="z"), "INVALID_ARGUMENT", "'z'"),
        (ws.ForkRunRequest(run_id=parent_id, from_node="b"), "FAILED_PRECONDITION", "never"),
        (ws.ForkRunRequest(run_id="no-such-run", from_node="a"), "NOT_FOUND", "no-such-run"),
        (
            ws.ForkRunRequest(
                run_id=parent_id,
                from_node="a",
                input_override=common_pb2.Payload(encoding="yaml", data=b"x: 1"),
            ),
            "INVALID_ARGUMENT",
            "input_override.encoding",
        ),
        (
            ws.ForkRunRequest(run_id=parent_id, from_node="a", request_id="taken"),
            "ALREADY_EXISTS",
            other,
        ),
    ]:
        before = (row_counts(url), history(stub, parent_id))
        error = refused(stub.ForkRun, request)
        assert error.code().name == code and text in (error.details() or ""), error.details()
        assert (row_counts(url), history(stub, parent_id)) == before
