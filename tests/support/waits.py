"""Helpers of the tests of waiting runs: approvals, events, effects and process figures."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from surefoot.v1 import approval_pb2 as apb

from tests.support.approval_auth import bearer
from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane
from tests.support.rich_status import rich_status
from tests.support.runs import CALL_TIMEOUT, Stub, json_payload

SAGA_STEPS_MODULE = Path(__file__).with_name("saga_steps.py")
# saga_steps.py writes its effects beside the execution log under this name.
EFFECTS_FILE = "effects.jsonl"


# -- approvals and events ----------------------------------------------------------------------


def approval_status(status: apb.ApprovalStatus.ValueType) -> str:
    return apb.ApprovalStatus.Name(status).removeprefix("APPROVAL_STATUS_")


def get_approval(stub: Stub, approval_id: str) -> apb.Approval:
    request = apb.GetApprovalRequest(approval_id=approval_id)
    return stub.GetApproval(request, timeout=CALL_TIMEOUT).approval


def decide(
    stub: Stub, approval_id: str, approve: bool, comment: str = "", token: str | None = None
) -> apb.Approval:
    """DecideApproval as the holder of `token` (None: without credentials)."""
    request = apb.DecideApprovalRequest(approval_id=approval_id, approve=approve, comment=comment)
    metadata = bearer(token) if token is not None else ()
    return stub.DecideApproval(request, timeout=CALL_TIMEOUT, metadata=metadata).approval


def pending_approvals(stub: Stub, page_size: int = 1000, **filters: Any) -> list[apb.Approval]:
    """Every pending approval matching `filters`, following the page tokens."""
    found: list[apb.Approval] = []
    token = ""
    while True:
        request = apb.ListApprovalsRequest(page_size=page_size, page_token=token, **filters)
        response = stub.ListApprovals(request, timeout=CALL_TIMEOUT)
        found.extend(response.approvals)
        token = response.next_page_token
        if not token:
            return found


def send_event(
    stub: Stub, name: str, key: str, payload: Any, event_id: str = ""
) -> apb.SendEventResponse:
    request = apb.SendEventRequest(
        event_name=name, correlation_key=key, payload=json_payload(payload), event_id=event_id
    )
    return stub.SendEvent(request, timeout=CALL_TIMEOUT)


# What the control plane logs when it welcomes a worker (controlplane/api/worker_service.py).
WORKER_WELCOMED = re.compile(r"worker \S+ connected as \S+ in namespace \S+ \(session")


def wait_until_a_worker_connected(control_plane: ControlPlane, timeout: float = 60.0) -> None:
    """Waits until the current control plane process has welcomed a worker (a reconnect)."""
    process = control_plane.process
    assert process is not None
    assert_eventually(
        lambda: WORKER_WELCOMED.search(process.stderr()),
        timeout,
        message=f"a worker connected to {process.name}",
    )


# -- refusals ----------------------------------------------------------------------------------


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of the google.rpc.BadRequest details of `error`."""
    status = rich_status(error)
    assert status is not None, f"no google.rpc.Status in the trailing metadata of {error}"
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations += [(v.field, v.description) for v in bad_request.field_violations]
    return violations


# -- what the compensations did ----------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """One application of a compensation's effect, as saga_steps.py's e2e-undo wrote it."""

    run_id: str
    node_id: str
    attempt: int
    idempotency_key: str
    input: Any
    pid: int
    time: float


def effects(execution_log: ExecutionLog) -> list[Effect]:
    path = execution_log.path.with_name(EFFECTS_FILE)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [Effect(**json.loads(line)) for line in lines if line.endswith("}")]


# -- a process seen from outside ---------------------------------------------------------------


@dataclass(frozen=True)
class ProcessFigures:
    """What the kernel says about a process: resident memory and threads."""

    rss_kib: int
    threads: int

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024


def process_figures(pid: int) -> ProcessFigures:
    """VmRSS and Threads from /proc/<pid>/status (Linux)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss_kib = int(fields["VmRSS"].split()[0])  # "123456 kB"
    return ProcessFigures(rss_kib=rss_kib, threads=int(fields["Threads"]))
