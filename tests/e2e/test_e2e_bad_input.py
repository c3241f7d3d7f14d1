"""Acceptance: bad input gets the precise gRPC status and writes nothing (law 8).

Each test compares what the control plane lists (definitions, runs) before and after the
refused request, so one control plane per store serves the whole module: a test that wrote
something would fail itself, not its neighbours.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypedDict, Unpack

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import common_pb2, definition_pb2, run_pb2, workflow_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.databases import database_params, fresh_database
from tests.support.processes import (
    PROCESSES,
    ControlPlane,
    ProcessRegistry,
    process_environment,
    run_cli,
)
from tests.support.raw_worker import RawWorkerStream, declaration
from tests.support.runs import (
    events_of,
    history,
    json_payload,
    list_runs,
    register,
    wait_for_status,
)
from tests.support.workflows import three_steps


@pytest.fixture(scope="module", params=database_params())
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """One control plane per store for the module, with a registered workflow and a run."""
    directory = tmp_path_factory.mktemp("bad-input")
    with fresh_database(request.param, directory) as url:
        registry = ProcessRegistry(directory / "processes", process_environment())
        try:
            control_plane = ControlPlane(registry, url)
            control_plane.start()
            register(control_plane.stub, three_steps("baseline"))
            yield control_plane
            assert control_plane.stop() == 0
        finally:
            registry.kill_all()


@pytest.fixture(autouse=True)
def _show_server_output_on_failure(request: pytest.FixtureRequest, server: ControlPlane) -> None:
    request.node.stash[PROCESSES] = server.registry


def stored(
    server: ControlPlane,
) -> tuple[list[tuple[str, str, str]], list[tuple[str, run_pb2.RunStatus.ValueType]]]:
    """Everything a refused request could have written: definitions and runs."""
    listed = server.stub.ListDefinitions(ws.ListDefinitionsRequest(), timeout=30)
    definitions = sorted((d.name, d.version, d.content_hash) for d in listed.definitions)
    runs = sorted((r.id, r.status) for r in list_runs(server.stub))
    return definitions, runs


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailing metadata"
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations += [(v.field, v.description) for v in bad_request.field_violations]
    return violations


class NodeKindFields(TypedDict, total=False):
    """The kind of a node, as keyword arguments of definition_pb2.Node."""

    task: definition_pb2.TaskNode


def task(
    step_type: str = "e2e-work", *, idempotent: bool = True, input: str = ""
) -> NodeKindFields:
    idempotency = common_pb2.IDEMPOTENCY_KEY if idempotent else common_pb2.IDEMPOTENCY_UNSPECIFIED
    return {
        "task": definition_pb2.TaskNode(step_type=step_type, idempotency=idempotency, input=input)
    }


def definition(name: str, *nodes: definition_pb2.Node) -> definition_pb2.WorkflowDefinition:
    return definition_pb2.WorkflowDefinition(name=name, version="1", nodes=nodes)


def node(node_id: str, next_node: str = "", **kind: Unpack[NodeKindFields]) -> definition_pb2.Node:
    return definition_pb2.Node(id=node_id, next=next_node, **(kind or task()))


# (definition, the field that must be named, what its description must say)
MALFORMED = {
    "unknown-next-node": (
        definition("unknown-next", node("a", "nowhere")),
        "definition.nodes[0].next",
        "node 'a': next node 'nowhere' does not exist",
    ),
    "unreachable-node": (
        definition("unreachable", node("a"), node("island")),
        "definition.nodes[1]",
        "node 'island' is unreachable",
    ),
    "bad-jmespath": (
        definition("bad-expression", node("a", **task(input="steps.[a"))),
        "definition.nodes[0].task.input",
        "node 'a': bad expression",
    ),
    "missing-idempotency": (
        definition(
            "no-idempotency",
            node("a", "b"),
            node("b", **task("never-declared-step", idempotent=False)),
        ),
        "definition.nodes[1].task.idempotency",
        "node 'b': step type 'never-declared-step' has no idempotency declaration",
    ),
    "duplicate-node-ids": (
        definition("duplicate-ids", node("a", "b"), node("b"), node("b")),
        "definition.nodes[2].id",
        "node id 'b' is used twice",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_definition_is_refused_naming_the_node(server: ControlPlane, case: str) -> None:
    bad, field, description = MALFORMED[case]
    before = stored(server)

    error = refusal(lambda: register(server.stub, bad))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    violations = field_violations(error)
    assert any(f == field and description in d for f, d in violations), violations
    assert stored(server) == before
    lookup = ws.GetDefinitionRequest(name=bad.name, version="1")
    missing = refusal(lambda: server.stub.GetDefinition(lookup, timeout=30))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_definition_versions_are_immutable(server: ControlPlane) -> None:
    before = stored(server)
    original = server.stub.GetDefinition(ws.GetDefinitionRequest(name="baseline", version="1"))

    same = register(server.stub, three_steps("baseline"))
    changed = three_steps("baseline")
    changed.description = "other content under a used version"
    error = refusal(lambda: register(server.stub, changed))

    assert not same.created
    assert same.info.content_hash == original.info.content_hash
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS, error
    assert stored(server) == before
    after = server.stub.GetDefinition(ws.GetDefinitionRequest(name="baseline", version="1"))
    assert after.definition == original.definition


@pytest.mark.parametrize(("name", "version"), [("no-such-workflow", ""), ("baseline", "9")])
def test_start_run_of_unknown_workflow_is_not_found(
    server: ControlPlane, name: str, version: str
) -> None:
    before = stored(server)
    request = ws.StartRunRequest(
        workflow_name=name, workflow_version=version, input=json_payload({"trail": []})
    )

    error = refusal(lambda: server.stub.StartRun(request, timeout=30))

    assert error.code() == grpc.StatusCode.NOT_FOUND, error
    assert stored(server) == before


def test_start_run_with_input_that_is_not_json_is_refused(server: ControlPlane) -> None:
    # The run would wait for these step types; declaring them keeps this test about input.
    steps = [declaration("e2e-work"), declaration("e2e-work-sync")]
    stream = RawWorkerStream(server.channel, "declares-only", steps)
    stream.next_of("welcome")
    before = stored(server)
    request_id = f"not-json-{uuid.uuid4().hex}"
    request = ws.StartRunRequest(
        workflow_name="baseline",
        input=common_pb2.Payload(encoding="json/plain", data=b'{"trail": [1, 2'),
        request_id=request_id,
    )

    error = refusal(lambda: server.stub.StartRun(request, timeout=30))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    ((field, description),) = field_violations(error)
    assert field == "input.data" and "is not valid JSON" in description
    assert stored(server) == before
    # The request id was not used up: a corrected request starts a new run with it.
    request.input.CopyFrom(json_payload({"trail": []}))
    assert server.stub.StartRun(request, timeout=30).created
    stream.close()


# A fixed uuid: test ids must not change from one collection to the next.
@pytest.mark.parametrize("run_id", ["no-such-run", "5f20bff8-4dff-4f1e-9060-859a69c584f1"])
def test_unknown_run_id_is_not_found(server: ControlPlane, run_id: str) -> None:
    before = stored(server)
    calls = {
        "GetRun": lambda: server.stub.GetRun(ws.GetRunRequest(run_id=run_id), timeout=30),
        "GetRunHistory": lambda: server.stub.GetRunHistory(
            ws.GetRunHistoryRequest(run_id=run_id), timeout=30
        ),
        "CancelRun": lambda: server.stub.CancelRun(
            ws.CancelRunRequest(run_id=run_id, reason="test"), timeout=30
        ),
    }

    codes = {name: refusal(call).code() for name, call in calls.items()}

    assert codes == dict.fromkeys(calls, grpc.StatusCode.NOT_FOUND)
    assert stored(server) == before


def test_cancel_of_a_completed_run_is_a_failed_precondition(server: ControlPlane) -> None:
    register(
        server.stub,
        definition("one-raw-step", node("only", **task("raw-step"))),
    )
    stream = RawWorkerStream(server.channel, "raw-completes", [declaration("raw-step")], 1)
    run_id = server.stub.StartRun(
        ws.StartRunRequest(workflow_name="one-raw-step", input=json_payload({})), timeout=30
    ).run_id
    only = stream.next_task()
    stream.complete(only.task_id, only.attempt, {"done": True})
    wait_for_status(server.stub, run_id, "COMPLETED")
    before, events = stored(server), history(server.stub, run_id)

    cancel = ws.CancelRunRequest(run_id=run_id, reason="too late")
    error = refusal(lambda: server.stub.CancelRun(cancel, timeout=30))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
    assert stored(server) == before
    assert history(server.stub, run_id) == events
    assert not events_of(events, "RUN_CANCELLED")
    stream.close()


def test_worker_hello_with_a_step_without_idempotency_is_refused(server: ControlPlane) -> None:
    steps = [
        declaration("half-of-a-good-hello"),
        declaration("undeclared-step", common_pb2.IDEMPOTENCY_UNSPECIFIED),
    ]
    stream = RawWorkerStream(server.channel, "careless-worker", steps, credit=1)

    error = stream.wait_ended()

    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert "undeclared-step" in (error.details() or "")
    assert not [m for m in stream.received if m.WhichOneof("message") == "welcome"]
    # Neither step type was registered: a definition relying on their declaration is refused.
    for step_type in ("half-of-a-good-hello", "undeclared-step"):
        relies = definition(
            f"relies-on-{step_type}", node("a", **task(step_type, idempotent=False))
        )
        refused = refusal(partial(register, server.stub, relies))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in field_violations(refused)] == ["definition.nodes[0].task.idempotency"]


def test_worker_module_with_a_step_without_idempotency_does_not_start(
    server: ControlPlane, tmp_path: Path
) -> None:
    module = tmp_path / "careless_steps.py"
    module.write_text(
        "from surefoot_worker import step\n\n\n"
        '@step("careless")\n'
        "def careless(ctx, input):\n"
        "    return input\n"
    )

    result = run_cli("worker", str(module), "--address", server.address)

    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert "idempotency" in result.stderr
    assert "connected" not in result.stdout


def test_cli_show_of_an_unknown_run_says_so_in_one_line(server: ControlPlane) -> None:
    result = run_cli("runs", "show", "no-such-run", "--address", server.address)

    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "no-such-run" in lines[0], lines
    assert "not found" in lines[0].lower(), lines


Stub = workflow_service_pb2_grpc.WorkflowServiceStub

# (the call, the field its INVALID_ARGUMENT must name) for a NUL byte in a string field.
NUL_REQUESTS: dict[str, tuple[Callable[[Stub], object], str]] = {
    "start-run-workflow-name": (
        lambda stub: stub.StartRun(ws.StartRunRequest(workflow_name="base\x00line"), timeout=30),
        "workflow_name",
    ),
    "start-run-request-id": (
        lambda stub: stub.StartRun(
            ws.StartRunRequest(workflow_name="baseline", request_id="id\x00"), timeout=30
        ),
        "request_id",
    ),
    "get-run-id": (
        lambda stub: stub.GetRun(ws.GetRunRequest(run_id="run\x00id"), timeout=30),
        "run_id",
    ),
    "cancel-run-reason": (
        lambda stub: stub.CancelRun(
            ws.CancelRunRequest(run_id="no-such-run", reason="why\x00"), timeout=30
        ),
        "reason",
    ),
    "retry-step-node-id": (
        lambda stub: stub.RetryStep(
            ws.RetryStepRequest(run_id="no-such-run", node_id="a\x00"), timeout=30
        ),
        "node_id",
    ),
    "definition-node-id": (
        lambda stub: stub.RegisterDefinition(
            ws.RegisterDefinitionRequest(definition=definition("nul-node", node("a\x00"))),
            timeout=30,
        ),
        "definition.nodes[0].id",
    ),
    "event-correlation-key": (
        lambda stub: stub.SendEvent(
            apb.SendEventRequest(event_name="paid", correlation_key="order\x001"), timeout=30
        ),
        "correlation_key",
    ),
}


@pytest.mark.parametrize("case", NUL_REQUESTS)
def test_a_nul_byte_in_a_string_field_is_refused_naming_it(server: ControlPlane, case: str) -> None:
    call, field = NUL_REQUESTS[case]
    before = stored(server)

    error = refusal(lambda: call(server.stub))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert field_violations(error) == [(field, "contains a NUL byte")]
    assert stored(server) == before


# JSON the store cannot keep, and the words the refusal uses.
UNSTORABLE_JSON = {
    "nested-100000-deep": (b"[" * 100_000 + b"]" * 100_000, "nested more than"),
    "integer-of-5000-digits": (b'{"amount": ' + b"9" * 5000 + b"}", "is not valid JSON"),
    "integer-beyond-64-bits": (b'{"amount": 36893488147419103232}', "beyond 64 bits"),
    "lone-surrogate": (b'{"name": "\\ud800"}', "lone surrogate"),
}


@pytest.mark.parametrize("case", UNSTORABLE_JSON)
def test_start_run_with_json_the_store_cannot_keep_is_refused(
    server: ControlPlane, case: str
) -> None:
    data, words = UNSTORABLE_JSON[case]
    before = stored(server)
    request = ws.StartRunRequest(
        workflow_name="baseline", input=common_pb2.Payload(encoding="json/plain", data=data)
    )

    error = refusal(lambda: server.stub.StartRun(request, timeout=30))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    ((field, description),) = field_violations(error)
    assert field == "input.data" and words in description, description
    assert stored(server) == before


@pytest.mark.parametrize("case", UNSTORABLE_JSON)
def test_an_event_payload_the_store_cannot_keep_is_refused(server: ControlPlane, case: str) -> None:
    data, words = UNSTORABLE_JSON[case]
    event_id = f"unstorable-{uuid.uuid4().hex}"
    before = stored(server)
    request = apb.SendEventRequest(
        event_name="paid",
        correlation_key=event_id,
        event_id=event_id,
        payload=common_pb2.Payload(encoding="json/plain", data=data),
    )

    error = refusal(lambda: server.stub.SendEvent(request, timeout=30))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    ((field, description),) = field_violations(error)
    assert field == "payload.data" and words in description, description
    assert stored(server) == before


def test_a_body_that_is_not_the_request_message_is_refused_in_one_log_line(
    server: ControlPlane,
) -> None:
    before = stored(server)
    assert server.process is not None
    logged = len(server.process.stderr().splitlines())
    # No (de)serializers: the body goes out, and the answer comes back, as raw bytes.
    raw_get_run = server.channel.unary_unary(
        "/surefoot.v1.WorkflowService/GetRun", request_serializer=None, response_deserializer=None
    )

    errors = [refusal(lambda: raw_get_run(b"\xff\xff\xff\xff", timeout=30)) for _ in range(3)]

    assert {e.code() for e in errors} == {grpc.StatusCode.INVALID_ARGUMENT}, errors
    assert field_violations(errors[0])[0][0] == "request"
    assert stored(server) == before
    written = server.process.stderr().splitlines()[logged:]
    assert "Traceback" not in "\n".join(written), written
    refused = [line for line in written if "not a valid message" in line]
    assert len(refused) == 3, written


BAD_RETRY_POLICIES = {
    "negative-attempts": (common_pb2.RetryPolicy(max_attempts=-1), ".retry.max_attempts"),
    "negative-interval": (common_pb2.RetryPolicy(initial_interval_seconds=-1), ".retry"),
    "nan-interval": (common_pb2.RetryPolicy(max_interval_seconds=float("nan")), ".retry"),
    "infinite-backoff": (common_pb2.RetryPolicy(backoff_coefficient=float("inf")), ".retry"),
}


@pytest.mark.parametrize("case", BAD_RETRY_POLICIES)
def test_worker_hello_with_a_bad_retry_policy_is_refused(server: ControlPlane, case: str) -> None:
    policy, suffix = BAD_RETRY_POLICIES[case]
    step_type = f"bad-retry-{case}"
    careless = declaration(step_type)
    careless.retry.CopyFrom(policy)
    steps = [declaration("good-before-the-bad-one"), careless]
    stream = RawWorkerStream(server.channel, f"worker-{case}", steps, credit=1)

    error = stream.wait_ended()

    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    fields = [f for f, _ in field_violations(error)]
    assert f"hello.step_types[1]{suffix}" in fields, fields
    assert not [m for m in stream.received if m.WhichOneof("message") == "welcome"]
    # The step type was not registered: a definition relying on its declaration is refused.
    relies = definition(f"relies-on-{step_type}", node("a", **task(step_type, idempotent=False)))
    refused = refusal(lambda: register(server.stub, relies))
    assert [f for f, _ in field_violations(refused)] == ["definition.nodes[0].task.idempotency"]
