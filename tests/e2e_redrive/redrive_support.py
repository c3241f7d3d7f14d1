"""Helpers of the redrive tests: an outage's dead letters, OperationService calls, waits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from surefoot.v1 import definition_pb2
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.e2e_redrive.outage_api import OutagePaymentApi
from tests.support.operations import (  # noqa: F401  (the tests import them from here)
    get_operation,
    items,
    operations,
    wait_done,
    wait_statuses,
)
from tests.support.processes import ControlPlane
from tests.support.runs import Stub, register, start_run

REDRIVE_STEPS = Path(__file__).with_name("redrive_steps.py")
CALL_TIMEOUT = 30.0
AMOUNT = 1250
SIGNATURE = "charge <id> for <id> of <n> failed: HTTP <n> at <time>"


def checkout(name: str, step_type: str = "redrive-charge") -> definition_pb2.WorkflowDefinition:
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "charge",
                    "task": {"step_type": step_type, "step_version": "1", "input": "input"},
                }
            ],
        }
    )


def customer(index: int) -> str:
    return f"cus_{index:04d}"


def dead_letter_outage(
    stub: Stub, api: OutagePaymentApi, name: str, count: int, step_type: str = "redrive-charge"
) -> dict[str, str]:
    """`count` runs of a one-step checkout that dead-letter on the outage: run id -> customer."""
    register(stub, checkout(name, step_type))
    started = {
        start_run(
            stub, name, {"api": api.url, "customer": customer(i), "amount": AMOUNT}
        ): customer(i)
        for i in range(count)
    }
    wait_statuses(stub, list(started), "NEEDS_ATTENTION")
    return started


def groups(stub: Stub, **filters: str) -> list[ws.DeadLetterGroup]:
    request = ws.ListDeadLettersRequest(filter=ws.DeadLetterFilter(**filters), grouped=True)
    return list(stub.ListDeadLetters(request, timeout=CALL_TIMEOUT).groups)


def dead_letter_run_ids(stub: Stub, **filters: str) -> set[str]:
    request = ws.ListDeadLettersRequest(filter=ws.DeadLetterFilter(**filters), page_size=1000)
    return {d.run_id for d in stub.ListDeadLetters(request, timeout=CALL_TIMEOUT).dead_letters}


def start_redrive(
    control_plane: ControlPlane, selection: opb.RedriveSelection, **fields: Any
) -> opb.StartRedriveResponse:
    request = opb.StartRedriveRequest(selection=selection, **fields)
    return operations(control_plane).StartRedrive(request, timeout=CALL_TIMEOUT)


def measured_rate(retried: list[opb.OperationItem]) -> float:
    """Retries per second from the items' recorded retry times (commit times)."""
    times = sorted(item.retried_at.ToNanoseconds() / 1e9 for item in retried)
    return (len(times) - 1) / (times[-1] - times[0])
