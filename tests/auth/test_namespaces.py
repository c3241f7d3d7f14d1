"""Namespaces isolate: a credential of team-a reaches nothing of team-b, and writes nothing.

Every WorkflowService RPC is tried by an admin of team-a (every role there) twice: naming
team-b (it has no role there: NOT_FOUND, not even the namespace's existence leaks), and
naming its own namespace with team-b's objects (they are not there: NOT_FOUND). The row
count of every table is the same before and after each refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf import message as pb_message
from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import run_pb2, workflow_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.api.access import RULES
from tests.auth.auth_support import (
    A_ADMIN,
    HELD,
    ROOT,
    TEAM_A,
    TEAM_B,
    SecuredControlPlane,
    bearer,
    held_definition,
    refused,
    row_counts,
    start_held_run,
)
from tests.support.runs import json_payload

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Objects:
    """What team-b has: a definition, a run waiting for an approval, that approval."""

    run_id: str
    approval_id: str


Request = Callable[[str, Objects], pb_message.Message]

# RPC -> the request it makes in `namespace` on team-b's objects.
REQUESTS: dict[str, Request] = {
    "RegisterDefinition": lambda ns, o: ws.RegisterDefinitionRequest(
        namespace=ns, definition=held_definition()
    ),
    "GetDefinition": lambda ns, o: ws.GetDefinitionRequest(namespace=ns, name=HELD, version="1"),
    "ListDefinitions": lambda ns, o: ws.ListDefinitionsRequest(namespace=ns),
    "DeprecateDefinition": lambda ns, o: ws.DeprecateDefinitionRequest(
        namespace=ns, name=HELD, version="1", reason="not yours"
    ),
    "StartRun": lambda ns, o: ws.StartRunRequest(namespace=ns, workflow_name=HELD),
    "GetRun": lambda ns, o: ws.GetRunRequest(namespace=ns, run_id=o.run_id),
    "ListRuns": lambda ns, o: ws.ListRunsRequest(namespace=ns),
    "GetRunHistory": lambda ns, o: ws.GetRunHistoryRequest(namespace=ns, run_id=o.run_id),
    "WatchRun": lambda ns, o: ws.WatchRunRequest(namespace=ns, run_id=o.run_id),
    "WatchRuns": lambda ns, o: ws.WatchRunsRequest(namespace=ns),
    "CancelRun": lambda ns, o: ws.CancelRunRequest(namespace=ns, run_id=o.run_id, reason="x"),
    "PauseRun": lambda ns, o: ws.PauseRunRequest(namespace=ns, run_id=o.run_id, reason="x"),
    "ResumeRun": lambda ns, o: ws.ResumeRunRequest(namespace=ns, run_id=o.run_id),
    "GetRunAt": lambda ns, o: ws.GetRunAtRequest(namespace=ns, run_id=o.run_id, seq=1),
    "ForkRun": lambda ns, o: ws.ForkRunRequest(namespace=ns, run_id=o.run_id, from_node="sign"),
    "ListApprovals": lambda ns, o: apb.ListApprovalsRequest(namespace=ns),
    "GetApproval": lambda ns, o: apb.GetApprovalRequest(namespace=ns, approval_id=o.approval_id),
    "DecideApproval": lambda ns, o: apb.DecideApprovalRequest(
        namespace=ns, approval_id=o.approval_id, approve=True
    ),
    "SendEvent": lambda ns, o: apb.SendEventRequest(
        namespace=ns, event_name="paid", correlation_key="o-1"
    ),
    "ListDeadLetters": lambda ns, o: ws.ListDeadLettersRequest(namespace=ns),
    "RetryStep": lambda ns, o: ws.RetryStepRequest(namespace=ns, run_id=o.run_id, node_id="sign"),
    "SkipStep": lambda ns, o: ws.SkipStepRequest(
        namespace=ns, run_id=o.run_id, node_id="sign", output=json_payload({})
    ),
    "RedriveDeadLetters": lambda ns, o: ws.RedriveDeadLettersRequest(
        namespace=ns, filter=ws.DeadLetterFilter(workflow_name=HELD)
    ),
}
# The RPCs that name one of team-b's objects: asked in team-a, the object is not there.
BY_ID = [
    "GetDefinition",
    "DeprecateDefinition",
    "StartRun",
    "GetRun",
    "GetRunHistory",
    "WatchRun",
    "CancelRun",
    "PauseRun",
    "ResumeRun",
    "GetRunAt",
    "ForkRun",
    "GetApproval",
    "DecideApproval",
    "RetryStep",
    "SkipStep",
]


@pytest.fixture(scope="module")
def team_b(secured: SecuredControlPlane) -> Objects:
    run_id = start_held_run(secured.stub, TEAM_B)
    return Objects(run_id, f"{run_id}:sign")


def test_every_workflow_rpc_is_in_the_matrix() -> None:
    # A new RPC must say here what another namespace's credential gets from it.
    methods = {m.rsplit("/", 1)[1] for m in RULES if "/surefoot.v1.WorkflowService/" in m}
    assert methods == set(REQUESTS)
    names = ws.DESCRIPTOR.services_by_name["WorkflowService"].methods_by_name
    assert set(names) == set(REQUESTS)


def _call(secured: SecuredControlPlane, rpc: str) -> Any:
    stub = workflow_service_pb2_grpc.WorkflowServiceStub(secured.channel)
    if rpc in ("WatchRun", "WatchRuns"):
        # A stream's status comes with its messages: read them all.
        return lambda request, **options: list(getattr(stub, rpc)(request, **options))
    return getattr(stub, rpc)


@pytest.mark.parametrize("rpc", sorted(REQUESTS))
def test_naming_another_namespace_is_not_found_and_writes_nothing(
    secured: SecuredControlPlane, team_b: Objects, rpc: str
) -> None:
    before = row_counts(secured.database_url)
    error = refused(_call(secured, rpc), REQUESTS[rpc](TEAM_B, team_b), bearer(A_ADMIN))
    assert error.code().name == "NOT_FOUND", error.details()
    assert TEAM_B in (error.details() or "")
    assert row_counts(secured.database_url) == before


@pytest.mark.parametrize("rpc", BY_ID)
def test_another_namespaces_objects_are_not_found_from_ones_own(
    secured: SecuredControlPlane, team_b: Objects, rpc: str
) -> None:
    before = row_counts(secured.database_url)
    error = refused(_call(secured, rpc), REQUESTS[rpc](TEAM_A, team_b), bearer(A_ADMIN))
    assert error.code().name == "NOT_FOUND", error.details()
    assert row_counts(secured.database_url) == before
    # Still there, untouched, for team-b.
    run = secured.stub.GetRun(
        ws.GetRunRequest(namespace=TEAM_B, run_id=team_b.run_id), timeout=30, metadata=bearer(ROOT)
    )
    assert run_pb2.RunStatus.Name(run.run.status) == "RUN_STATUS_WAITING"


def test_lists_in_ones_own_namespace_show_nothing_of_another(
    secured: SecuredControlPlane, team_b: Objects
) -> None:
    stub = secured.stub
    # Not HELD: team-a must keep having no definition of that name (see above).
    own = start_held_run(stub, TEAM_A, "own-held")
    token = bearer(A_ADMIN)
    runs = stub.ListRuns(ws.ListRunsRequest(namespace=TEAM_A), timeout=30, metadata=token).runs
    assert own in {r.id for r in runs} and team_b.run_id not in {r.id for r in runs}
    approvals = stub.ListApprovals(
        apb.ListApprovalsRequest(namespace=TEAM_A), timeout=30, metadata=token
    ).approvals
    assert own in {a.run_id for a in approvals}
    assert team_b.run_id not in {a.run_id for a in approvals}
    definitions = stub.ListDefinitions(
        ws.ListDefinitionsRequest(namespace=TEAM_A), timeout=30, metadata=token
    ).definitions
    assert {d.namespace for d in definitions} == {TEAM_A}
