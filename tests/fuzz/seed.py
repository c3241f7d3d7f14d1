"""What a fuzzed server holds before the fuzzing starts, and the ids the strategies draw from.

Random ids only ever meet "not found". With real objects to aim at (runs waiting on an
approval and on an event, dead letters, definitions, a page token), a good share of the
generated requests reaches the code behind the lookup: the checks of a decision, a retry's
input, a skip's output, a redrive's filter.

Nothing seeded wakes up by itself (no timers, no timeouts, no worker left connected), so
the database stays still between two requests and a fingerprint taken around a refused one
can only change if that request wrote.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field

import grpc
from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import (
    common_pb2,
    credential_service_pb2,
    credential_service_pb2_grpc,
    worker_service_pb2_grpc,
    workflow_service_pb2_grpc,
)
from surefoot.v1 import worker_service_pb2 as wpb
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.support.runs import CALL_TIMEOUT, json_payload

Metadata = tuple[tuple[str, str], ...]
STEP_TYPE = "fuzz-step"
ERROR_TYPE = "FuzzError"
EVENT = "paid"
RUNS_OF_EACH = 3
APPROVER = "fuzz-approver"

_NO_RETRY = {"max_attempts": 1, "initial_interval_seconds": 0, "backoff_coefficient": 1}


def _task(node_id: str, next_node: str | None = None) -> dict[str, object]:
    node: dict[str, object] = {
        "id": node_id,
        "task": {
            "step_type": STEP_TYPE,
            "step_version": "1",
            "input": "input",
            "idempotency": "key",
            "retry": _NO_RETRY,
        },
    }
    if next_node:
        node["next"] = next_node
    return node


DEFINITIONS = {
    "fuzz-approval": [
        {
            "id": "review",
            "next": "after",
            "approval": {
                "title": "Pay?",
                "approvers": [APPROVER, "group:managers"],
                "show": {"amount": "input.amount"},
            },
        },
        _task("after"),
    ],
    "fuzz-event": [
        {
            "id": "wait",
            "next": "after",
            "wait_event": {"event_name": EVENT, "correlation_key": "input.order"},
        },
        _task("after"),
    ],
    "fuzz-task": [_task("charge")],
}


@dataclass
class Seeded:
    """Ids of what the server holds, by the request field names that carry them."""

    known: dict[str, list[str]] = field(default_factory=dict)
    task_ids: list[str] = field(default_factory=list)
    # Run ids by workflow name.
    runs: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, *values: str) -> None:
        self.known.setdefault(name, [])
        self.known[name] += [v for v in values if v not in self.known[name]]


def seed(channel: grpc.Channel, metadata: Metadata = (), worker: Metadata = ()) -> Seeded:
    """Registers the definitions, starts their runs, dead-letters the task runs and makes
    a credential;
    `metadata` authenticates the client calls, `worker` the worker stream."""
    stub = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
    seeded = Seeded()
    seeded.add("namespace", "", "default")
    seeded.add("version", "1", "latest", "")
    seeded.add("workflow_version", "1", "latest", "")
    seeded.add("node_id", "review", "wait", "after", "charge")
    seeded.add("event_name", EVENT)
    seeded.add("step_type", STEP_TYPE)
    seeded.add("error_type", ERROR_TYPE)
    seeded.add("approver", APPROVER, "managers", "group:managers")
    for name, nodes in DEFINITIONS.items():
        definition = definition_from_dict({"name": name, "version": "1", "nodes": nodes})
        request = ws.RegisterDefinitionRequest(definition=definition)
        stub.RegisterDefinition(request, timeout=CALL_TIMEOUT, metadata=metadata)
        seeded.add("name", name)
        seeded.add("workflow_name", name)
        for index in range(RUNS_OF_EACH):
            order = f"order-{name}-{index}"
            started = stub.StartRun(
                ws.StartRunRequest(
                    workflow_name=name,
                    input=json_payload({"order": order, "amount": 100 + index}),
                    request_id=order,
                ),
                timeout=CALL_TIMEOUT,
                metadata=metadata,
            )
            seeded.add("run_id", started.run_id)
            seeded.runs.setdefault(name, []).append(started.run_id)
            seeded.add("request_id", order)
            seeded.add("correlation_key", order)
    tasks = dead_letter_tasks(channel, RUNS_OF_EACH, worker)
    seeded.task_ids = [task_id for task_id, _ in tasks]
    seeded.add("idempotency_key", *(key for _, key in tasks))
    approvals = stub.ListApprovals(
        apb.ListApprovalsRequest(), timeout=CALL_TIMEOUT, metadata=metadata
    ).approvals
    seeded.add("approval_id", *(a.id for a in approvals))
    credentials = credential_service_pb2_grpc.CredentialServiceStub(channel)
    made = credentials.CreateCredential(
        credential_service_pb2.CreateCredentialRequest(
            principal="fuzz-seeded",
            namespaces={"default": credential_service_pb2.NamespaceRoles(roles=["viewer"])},
        ),
        timeout=CALL_TIMEOUT,
        metadata=metadata,
    )
    seeded.add("id", made.credential.id)
    page = stub.ListRuns(ws.ListRunsRequest(page_size=1), timeout=CALL_TIMEOUT, metadata=metadata)
    seeded.add("page_token", page.next_page_token)
    return seeded


def dead_letter_tasks(
    channel: grpc.Channel, count: int, metadata: Metadata = ()
) -> list[tuple[str, str]]:
    """Takes `count` tasks of STEP_TYPE on a worker stream and fails each for good; returns
    their (task id, idempotency key) once every failure is acknowledged (durable)."""
    outbound: queue.Queue[wpb.WorkerMessage | None] = queue.Queue()
    declaration = common_pb2.StepTypeDeclaration(
        name=STEP_TYPE, version="1", idempotency=common_pb2.IDEMPOTENCY_KEY
    )
    outbound.put(
        wpb.WorkerMessage(hello=wpb.Hello(worker_id="fuzz-seeder", step_types=[declaration]))
    )
    outbound.put(wpb.WorkerMessage(credit=wpb.Credit(n=count)))
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    call = stub.Connect(iter(outbound.get, None), timeout=60, metadata=metadata)
    tasks: list[tuple[str, str]] = []
    acknowledged: set[str] = set()
    for message in call:
        kind = message.WhichOneof("message")
        if kind == "tasks":
            for task in message.tasks.tasks:
                tasks.append((task.task_id, task.idempotency_key))
                fail = wpb.Fail(
                    task_id=task.task_id,
                    attempt=task.attempt,
                    error_type=ERROR_TYPE,
                    message="seeded dead letter",
                    retryable=False,
                )
                outbound.put(wpb.WorkerMessage(fail=fail))
        elif kind == "ack":
            acknowledged.update(message.ack.task_ids)
            if len(acknowledged) >= count:
                outbound.put(None)
    assert len(acknowledged) == count, f"dead letters acknowledged: {acknowledged}"
    return tasks
