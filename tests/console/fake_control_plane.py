"""A control plane that answers from fixed data, for screenshots that never change.

Snapshot tests compare what the console draws with a stored SVG: times, ids and counts must
be the same on every run, which no live server gives. Everything behavioural is tested
against real processes (the other test files); this only feeds the screens fixed answers
through the same ControlPlane methods they call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2
from surefoot.v1 import approval_pb2, common_pb2, definition_pb2, run_pb2
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import worker_admin_service_pb2 as wpb
from surefoot.v1 import workflow_service_pb2 as ws
from textual.screen import Screen

from console.app import SurefootConsole
from console.client import ConsoleError, ControlPlane, Identity, Page

T0 = 1_790_000_000  # 2026-09-21T14:13:20Z


def at(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=T0 + seconds)


def payload(value: object) -> common_pb2.Payload:
    return common_pb2.Payload(encoding="json/plain", data=json.dumps(value).encode())


GROUP_FILTER = ws.DeadLetterFilter(
    workflow_name="checkout",
    workflow_version="3",
    step_type="charge-card",
    step_version="2",
    error_type="PaymentUnavailable",
    error_signature="charge <id> for <id> of <n> failed: HTTP <n> at <time>",
)
GROUPS = [
    ws.DeadLetterGroup(
        workflow_name="checkout",
        workflow_version="3",
        step_type="charge-card",
        step_version="2",
        error_type="PaymentUnavailable",
        error_signature=GROUP_FILTER.error_signature,
        idempotency="key",
        count=4000,
        oldest=at(0),
        newest=at(1_830),
        sample_message="charge req_9f2 for cus_4121 of 1250 failed: HTTP 503 at 14:43:50",
        sample_run_id="run-7c1e",
        filter=GROUP_FILTER,
    ),
    ws.DeadLetterGroup(
        workflow_name="refunds",
        workflow_version="1",
        step_type="transfer",
        step_version="1",
        error_type="LedgerLocked",
        error_signature="ledger <id> locked",
        idempotency="none",
        count=12,
        oldest=at(600),
        newest=at(900),
        sample_message="ledger L-22 locked",
        sample_run_id="run-0a9f",
        filter=ws.DeadLetterFilter(workflow_name="refunds", error_type="LedgerLocked"),
    ),
]


def dead_letter(index: int) -> ws.DeadLetter:
    return ws.DeadLetter(
        run_id=f"run-{index:04d}",
        node_id="charge",
        workflow_name="checkout",
        workflow_version="3",
        step_type="charge-card",
        step_version="2",
        error_type="PaymentUnavailable",
        error_message=f"charge req_{index:03x} for cus_{index:04d} of 1250 failed: HTTP 503",
        attempts=3,
        dead_lettered_at=at(index),
        idempotency="key",
        error_signature=GROUP_FILTER.error_signature,
    )


def operation(done: bool = False) -> opb.Operation:
    retried = 4000 if done else 1400
    return opb.Operation(
        id="op-5d2a",
        kind="redrive",
        state=opb.OPERATION_STATE_COMPLETED if done else opb.OPERATION_STATE_RUNNING,
        created_by="alice",
        comment="PSP back after INC-42",
        created_at=at(2_000),
        finished_at=at(2_080) if done else None,
        rate_per_second=50,
        done=done,
        progress=opb.OperationProgress(
            matched=4000,
            pending=4000 - retried,
            retried=retried,
            running=0 if done else 40,
            succeeded=retried - 20 if done else 1340,
            failed_again=20,
        ),
        failures=[
            opb.OperationFailure(
                error_type="CardDeclined",
                count=20,
                sample_message="card 4242 declined",
                sample_run_ids=["run-0042"],
            )
        ],
    )


def checkout_definition(version: str) -> definition_pb2.WorkflowDefinition:
    """reserve → charge → ship; version 3 charges with step version 2 and five attempts, and
    notifies the customer at the end (what a diff of 2 and 3 shows)."""
    from surefoot_worker.authoring import definition_from_dict

    newest = version == "3"

    def task(node_id: str, step_type: str, then: str | None, step_version: str = "1") -> Any:
        retry = {"max_attempts": 5 if newest else 3, "initial_interval_seconds": 1}
        spec: dict[str, Any] = {
            "id": node_id,
            "task": {
                "step_type": step_type,
                "step_version": step_version,
                "input": "input",
                "idempotency": "key",
                "retry": retry,
            },
        }
        if then:
            spec["next"] = then
        return spec

    nodes = [
        task("reserve", "reserve-stock", "charge"),
        task("charge", "charge-card", "ship", "2" if newest else "1"),
        task("ship", "ship-parcel", "notify" if newest else None),
    ]
    if newest:
        nodes.append(task("notify", "send-email", None))
    return definition_from_dict({"name": "checkout", "version": version, "nodes": nodes})


class FakeControlPlane(ControlPlane):
    """Fixed answers; nothing is listening at its address and nothing is called there."""

    def __init__(self, *, readonly: bool = False) -> None:
        super().__init__("127.0.0.1:9", "default", readonly=readonly)
        self.reachable = True
        self.identity = Identity(
            "alice", ("approver", "operator", "viewer"), ("managers",), "credential"
        )
        self.writes: list[str] = []

    async def read(self, rpc: Any, request: Any) -> Any:
        raise ConsoleError(f"UNIMPLEMENTED: the fake has no answer for {request.DESCRIPTOR.name}")

    async def who_am_i(self) -> Identity:
        assert self.identity is not None
        return self.identity

    async def dead_letter_groups(
        self, dl_filter: ws.DeadLetterFilter | None = None, token: str = "", size: int = 100
    ) -> Page:
        if dl_filter is not None and dl_filter.error_signature:
            return Page([g for g in GROUPS if g.filter == dl_filter], "")
        return Page(list(GROUPS), "")

    async def dead_letters(
        self, dl_filter: ws.DeadLetterFilter | None = None, token: str = "", size: int = 100
    ) -> Page:
        start = int(token or 0)
        end = min(4000, start + size)
        return Page([dead_letter(i) for i in range(start, end)], str(end) if end < 4000 else "")

    async def get_run(self, run_id: str) -> run_pb2.Run:
        step = run_pb2.Step(
            node_id="charge",
            step_type="charge-card",
            kind="task",
            status=run_pb2.STEP_STATUS_DEAD_LETTERED,
            attempt=3,
            idempotency_key=f"{run_id}:charge",
            input=payload({"customer": "cus_0001", "amount": 1250}),
            last_error=run_pb2.StepError(
                type="PaymentUnavailable",
                message="charge req_001 for cus_0001 of 1250 failed: HTTP 503",
                details='Traceback (most recent call last):\n  File "steps.py", line 41',
            ),
            attempts=[
                run_pb2.Attempt(
                    number=n,
                    worker_id="worker-a",
                    started_at=at(n * 2),
                    ended_at=at(n * 2 + 1),
                    outcome=run_pb2.ATTEMPT_OUTCOME_FAILED,
                    error=run_pb2.StepError(type="PaymentUnavailable", message="HTTP 503"),
                )
                for n in (1, 2, 3)
            ],
        )
        return run_pb2.Run(
            id=run_id,
            workflow_name="checkout",
            workflow_version="3",
            status=run_pb2.RUN_STATUS_NEEDS_ATTENTION,
            steps=[step],
        )

    async def plan_redrive(
        self, selection: opb.RedriveSelection, rate: float
    ) -> opb.StartRedriveResponse:
        group = next(g for g in GROUPS if g.filter == selection.filter)
        unsafe = group.count if group.idempotency == "none" else 0
        plan = opb.RedrivePlan(
            matched=group.count,
            unsafe=unsafe,
            to_redrive=group.count - unsafe,
            rate_per_second=rate,
            expected_duration=duration_pb2.Duration(seconds=round((group.count - unsafe) / rate)),
            step_types=[
                opb.PlannedStepType(
                    step_type=group.step_type,
                    step_version=group.step_version,
                    idempotency=group.idempotency,
                    count=group.count,
                    excluded=bool(unsafe),
                )
            ],
        )
        return opb.StartRedriveResponse(plan=plan)

    async def list_operations(self, token: str = "", size: int = 100) -> Page:
        return Page([operation(done=True)], "")

    async def get_operation(self, operation_id: str) -> opb.Operation:
        return operation(done=True)

    def watch_operation(self, operation_id: str) -> Iterable[opb.WatchOperationResponse]:
        # Done: the panel says so whichever of the stream and the first read lands last.
        return _Stream([opb.WatchOperationResponse(operation=operation(done=True))])

    async def history(self, run_id: str, after_seq: int = 0) -> list[run_pb2.HistoryEvent]:
        return []

    async def pending_approvals(self, approver: str = "", token: str = "") -> Page:
        approval = approval_pb2.Approval(
            id="run-0a11:manager",
            run_id="run-0a11",
            node_id="manager",
            workflow_name="onboarding",
            workflow_version="1",
            title="Onboard ACME",
            approvers=["group:managers"],
            shown=payload({"customer": "ACME", "amount": 1200}),
            status=approval_pb2.APPROVAL_STATUS_PENDING,
            requested_at=at(300),
            deadline=at(86_400),
        )
        return Page([approval], "")

    async def list_workers(self, token: str = "", size: int = 100) -> Page:
        workers = [
            wpb.ConnectedWorker(
                session_id=f"s{n}",
                worker_id=f"worker-{n}",
                step_types=[wpb.WorkerStepType(name="charge-card", version="1")],
                credit=8,
                in_flight=n,
                connected_since=at(-3_600),
                last_heard=at(1_000 + n),
            )
            for n in (1, 2)
        ]
        return Page(workers, "")

    async def queued_step_types(self) -> list[wpb.QueuedStepType]:
        return [
            wpb.QueuedStepType(
                name="charge-card",
                version="2",
                queued=4000,
                oldest_queued_since=at(0),
                capable_workers=0,
                connected_versions=["1"],
            ),
            wpb.QueuedStepType(
                name="send-email", queued=3, oldest_queued_since=at(1_700), capable_workers=2
            ),
        ]

    async def list_definitions(self) -> list[ws.DefinitionInfo]:
        return [
            ws.DefinitionInfo(
                name="checkout",
                version=str(v),
                sequence=v,
                runs_in_flight=[0, 12, 4021][v - 1],
                registered_at=at(-86_400 * (4 - v)),
                deprecated=v == 1,
                deprecated_by="bob" if v == 1 else "",
                deprecation_reason="double charge on retry" if v == 1 else "",
                content_hash=f"sha256:5e7a{v}c0de",
            )
            for v in (1, 2, 3)
        ]

    async def get_definition(
        self, name: str, version: str
    ) -> tuple[ws.DefinitionInfo, definition_pb2.WorkflowDefinition]:
        [info] = [i for i in await self.list_definitions() if i.version == version]
        return info, checkout_definition(version)


class ScreenApp(SurefootConsole):
    """The console started on one screen (instead of the runs), for its snapshot."""

    def __init__(
        self,
        control_plane: ControlPlane,
        first: Callable[[ControlPlane], Screen[None]],
        keymap: dict[str, str] | None = None,
    ):
        super().__init__(control_plane, keymap)
        self._first = first

    def get_default_screen(self) -> Screen[None]:
        return self._first(self.control_plane)


class _Stream(list[opb.WatchOperationResponse]):
    """A server stream that sends what it holds, then ends; `cancel` as a grpc call has."""

    def cancel(self) -> None:
        pass
