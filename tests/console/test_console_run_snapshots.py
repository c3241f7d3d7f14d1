"""What the Run, Replay and Runs screens draw, at 80×24 and 160×48, compared with the stored
SVG (pytest-textual-snapshot; `--snapshot-update` stores new ones after a look at the report).

The screens read a fake RunClient with fixed runs, histories and times, and their clock is
fixed, so a picture changes only when the drawing does. Everything behavioural is tested
against real processes in the other test_console_run*/replay/runs files.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from surefoot.v1 import common_pb2, run_pb2
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input

from console.action_prompt import ActionPrompt
from console.client import ConsoleError, ControlPlane
from console.screens.replay import ReplayScreen
from console.screens.run import RunScreen
from console.screens.run_action import RunActionModal
from console.screens.runs import RunsScreen
from console.trace_table import TraceTable
from tests.console.console_support import until
from tests.console.fake_control_plane import FakeControlPlane, ScreenApp

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]
T0 = 1_790_000_000  # 2026-09-21T14:13:20Z
FLAKY = "run-4f1c0000-0000-4000-8000-00000000a001"
SAGA = "run-5a9a0000-0000-4000-8000-00000000a002"
WORKER = "worker-a"


def at(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int((T0 + seconds) * 1e9))
    return stamp


def payload(value: object) -> common_pb2.Payload:
    return common_pb2.Payload(encoding="json/plain", data=json.dumps(value).encode())


class History(list[run_pb2.HistoryEvent]):
    def add(self, kind: str, seconds: float, node: str = "", attempt: int = 0, **data: Any) -> None:
        principal = data.pop("principal", WORKER if kind.startswith("ATTEMPT") else "system")
        self.append(
            run_pb2.HistoryEvent(
                seq=len(self) + 1,
                type=run_pb2.EventType.Value(f"EVENT_TYPE_{kind}"),
                time=at(seconds),
                node_id=node,
                attempt=attempt,
                principal=principal,
                data=payload(data),
            )
        )


DOWN = {"type": "PaymentUnavailable", "message": "HTTP 503 from the card API", "retryable": True}


def flaky_history() -> History:
    """checkout: reserve done, charge failed twice and runs its third attempt (from GetRun)."""
    h = History()
    h.add("RUN_STARTED", 0, principal="ops", workflow="checkout", version="3")
    h.add("STEP_SCHEDULED", 0, "reserve", 1, input={"sku": "A-1"})
    h.add("ATTEMPT_STARTED", 0.5, "reserve", 1)
    h.add("ATTEMPT_COMPLETED", 4, "reserve", 1, output={"reservation": "rsv_1"})
    h.add("STEP_SCHEDULED", 4, "charge", 1, input={"amount": 1250})
    h.add("ATTEMPT_STARTED", 4.2, "charge", 1)
    h.add("ATTEMPT_FAILED", 8, "charge", 1, error=DOWN)
    h.add("RETRY_SCHEDULED", 8, "charge", 2, delay_seconds=4, due_at=T0 + 12)
    h.add("ATTEMPT_STARTED", 12.1, "charge", 2)
    h.add("ATTEMPT_FAILED", 16, "charge", 2, error=DOWN)
    h.add("RETRY_SCHEDULED", 16, "charge", 3, delay_seconds=8, due_at=T0 + 24)
    return h


def flaky_run() -> run_pb2.Run:
    charge = run_pb2.Step(
        node_id="charge",
        step_type="charge-card",
        kind="task",
        status=run_pb2.STEP_STATUS_RUNNING,
        attempt=3,
        idempotency_key=f"{FLAKY}:charge",
        input=payload({"amount": 1250, "customer": "cus_0001"}),
        last_error=run_pb2.StepError(
            type="PaymentUnavailable", message="HTTP 503 from the card API", retryable=True
        ),
        attempts=[
            run_pb2.Attempt(number=1, worker_id=WORKER, started_at=at(4.2), ended_at=at(8)),
            run_pb2.Attempt(number=2, worker_id=WORKER, started_at=at(12.1), ended_at=at(16)),
            run_pb2.Attempt(
                number=3,
                worker_id=WORKER,
                started_at=at(24.3),
                outcome=run_pb2.ATTEMPT_OUTCOME_RUNNING,
                details=payload({"seconds_left": 3.5}),
            ),
        ],
    )
    for attempt in charge.attempts[:2]:
        attempt.outcome = run_pb2.ATTEMPT_OUTCOME_FAILED
        attempt.error.CopyFrom(charge.last_error)
    return run_pb2.Run(
        id=FLAKY,
        workflow_name="checkout",
        workflow_version="3",
        status=run_pb2.RUN_STATUS_RUNNING,
        input=payload({"sku": "A-1", "amount": 1250, "customer": "cus_0001"}),
        created_at=at(0),
        updated_at=at(24.3),
        current_node="charge",
        steps=[
            run_pb2.Step(
                node_id="reserve",
                step_type="reserve-stock",
                kind="task",
                status=run_pb2.STEP_STATUS_COMPLETED,
                attempt=1,
                input=payload({"sku": "A-1"}),
                output=payload({"reservation": "rsv_1"}),
            ),
            charge,
        ],
        blocked_on=[
            run_pb2.BlockedOn(
                kind=run_pb2.BLOCKED_ON_KIND_RUNNING,
                node_id="charge",
                description="step 'charge' (charge-card@2) attempt 3 of 5 running on worker "
                "worker-a, last heartbeat 0.4 s ago",
                since=at(24.3),
            )
        ],
    )


def saga_history() -> History:
    """a → b → c with compensations; c is declined and b then a are undone."""
    h = History()
    h.add("RUN_STARTED", 0, principal="ops", workflow="saga", version="1")
    for index, node in enumerate(("a", "b")):
        start = index * 3.0
        h.add("STEP_SCHEDULED", start, node, 1, input={"trail": []})
        h.add("ATTEMPT_STARTED", start + 0.2, node, 1)
        h.add("ATTEMPT_COMPLETED", start + 3, node, 1, output={"trail": ["a", "b"][: index + 1]})
    declined = {"type": "CardDeclined", "message": "c: card 4242 declined", "retryable": False}
    h.add("STEP_SCHEDULED", 6, "c", 1, input={"trail": ["a", "b"]})
    h.add("ATTEMPT_STARTED", 6.2, "c", 1)
    h.add("ATTEMPT_FAILED", 7, "c", 1, error=declined)
    h.add("STEP_DEAD_LETTERED", 7, "c", 1, error=declined)
    h.add("COMPENSATION_STARTED", 7, reason="step 'c' failed", order=["b", "a"])
    for index, node in enumerate(("b.compensation", "a.compensation")):
        start = 7 + index * 2.0
        h.add("STEP_SCHEDULED", start, node, 1, input={"undo": node[0]})
        h.add("ATTEMPT_STARTED", start + 0.1, node, 1)
        h.add("ATTEMPT_COMPLETED", start + 2, node, 1, output={"undone": node[0]})
    h.add("RUN_COMPENSATED", 11, error=declined)
    return h


def saga_run() -> run_pb2.Run:
    status = {
        "a": run_pb2.STEP_STATUS_COMPENSATED,
        "b": run_pb2.STEP_STATUS_COMPENSATED,
        "c": run_pb2.STEP_STATUS_DEAD_LETTERED,
        "b.compensation": run_pb2.STEP_STATUS_COMPLETED,
        "a.compensation": run_pb2.STEP_STATUS_COMPLETED,
    }
    return run_pb2.Run(
        id=SAGA,
        workflow_name="saga",
        workflow_version="1",
        status=run_pb2.RUN_STATUS_COMPENSATED,
        input=payload({"trail": []}),
        created_at=at(0),
        updated_at=at(11),
        closed_at=at(11),
        last_error=run_pb2.StepError(type="CardDeclined", message="c: card 4242 declined"),
        steps=[
            run_pb2.Step(node_id=node, kind="compensation" if "." in node else "task", status=s)
            for node, s in status.items()
        ],
    )


def saga_snapshot(seq: int) -> run_pb2.RunSnapshot:
    """The saga just after b's compensation completed (seq 15): b undone, a not yet."""
    states = {
        "a": run_pb2.STEP_STATUS_COMPLETED,
        "b": run_pb2.STEP_STATUS_COMPENSATED,
        "c": run_pb2.STEP_STATUS_DEAD_LETTERED,
        "b.compensation": run_pb2.STEP_STATUS_COMPLETED,
    }
    outputs = {"a": {"trail": ["a"]}, "b": {"trail": ["a", "b"]}, "b.compensation": {"undone": "b"}}
    event = saga_history()[seq - 1]
    return run_pb2.RunSnapshot(
        run_id=SAGA,
        seq=seq,
        time=event.time,
        last_seq=21,
        event=event,
        status=run_pb2.RUN_STATUS_COMPENSATING,
        input=payload({"trail": []}),
        current_node="b.compensation",
        steps=[
            run_pb2.Step(
                node_id=node,
                kind="compensation" if "." in node else "task",
                status=state,
                output=payload(outputs[node]) if node in outputs else None,
            )
            for node, state in states.items()
        ],
        notes=["the order of the compensations still to run is not replayed"],
    )


def runs_list() -> list[run_pb2.Run]:
    statuses = ["RUNNING", "WAITING", "NEEDS_ATTENTION", "COMPLETED", "COMPENSATED", "CANCELLED"]
    found = []
    for index in range(14):
        status = statuses[index % len(statuses)]
        run = run_pb2.Run(
            id=f"{index:04x}c0de-0000-4000-8000-{index:012x}",
            workflow_name="checkout" if index % 3 else "onboarding",
            workflow_version=str(1 + index % 2),
            status=run_pb2.RunStatus.Value(f"RUN_STATUS_{status}"),
            created_at=at(-index * 600),
            updated_at=at(-index * 300),
        )
        if status == "WAITING":
            run.waiting_for = "approval 'Ship it?' of 'manager' by group:managers"
        if status == "NEEDS_ATTENTION":
            run.last_error.CopyFrom(run_pb2.StepError(type="CardDeclined", message="declined"))
        found.append(run)
    return found


class Stream:
    """A server stream: what it holds, then open until cancelled (as a live stream is)."""

    def __init__(self, messages: list[Any]) -> None:
        self._messages = messages
        self._cancelled = threading.Event()

    def __iter__(self) -> Any:
        yield from self._messages
        self._cancelled.wait()

    def cancel(self) -> None:
        self._cancelled.set()


class FakeRunClient:
    """The RunClient calls the screens make, answered from the fixed data above."""

    namespace = "default"
    unanswered = None

    def __init__(self, control_plane: ControlPlane) -> None:
        self.control_plane = control_plane
        self.runs = {FLAKY: (flaky_run(), flaky_history()), SAGA: (saga_run(), saga_history())}

    def close(self) -> None:
        pass

    def translate(self, exc: Exception) -> ConsoleError:
        return ConsoleError(str(exc))

    async def get_run(self, run_id: str) -> run_pb2.Run:
        return self.runs[run_id][0]

    async def history(self, run_id: str, after_seq: int = 0) -> list[run_pb2.HistoryEvent]:
        return [event for event in self.runs[run_id][1] if event.seq > after_seq]

    async def run_at(self, run_id: str, seq: int) -> run_pb2.RunSnapshot:
        return saga_snapshot(seq)

    def watch_run(self, run_id: str, after_seq: int) -> Stream:
        run, events = self.runs[run_id]
        fresh = [event for event in events if event.seq > after_seq]
        return Stream([ws.WatchRunResponse(events=fresh, status=run.status)])

    def watch_runs(self, run_filter: ws.RunFilter, initial_limit: int) -> Stream:
        changes = [ws.RunChange(run=run) for run in runs_list()]
        counts = {"RUNNING": 112, "WAITING": 37, "NEEDS_ATTENTION": 5, "COMPLETED": 1_021}
        counts |= {"COMPENSATED": 19, "CANCELLED": 10}
        by_status = [
            ws.StatusCount(status=value, count=counts.get(name.removeprefix("RUN_STATUS_"), 0))
            for name, value in run_pb2.RunStatus.items()
            if value
        ]
        first = ws.WatchRunsResponse(
            changes=changes, initial=True, total=1_204, counts_by_status=by_status
        )
        return Stream([first])

    async def plan_run_action(self, request: opb.StartRunActionRequest) -> opb.RunActionPlan:
        return opb.RunActionPlan(
            matched=2,
            applicable=1,
            not_applicable=1,
            rate_per_second=request.rate_per_second,
            expected_duration=duration_pb2.Duration(nanos=100_000_000),
            workflows=[
                opb.PlannedWorkflow(
                    workflow_name="checkout", workflow_version="2", matched=2, applicable=1
                )
            ],
            reasons=[opb.NotApplicableRuns(reason="the run has ended (COMPLETED)", count=1)],
        )


def run_screen(run_id: str) -> Callable[[ControlPlane], Screen[None]]:
    def open(control_plane: ControlPlane) -> Screen[None]:
        client: Any = FakeRunClient(control_plane)
        return RunScreen(control_plane, run_id, client=client, clock=lambda: T0 + 27.0)

    return open


def replay_screen(control_plane: ControlPlane) -> Screen[None]:
    client: Any = FakeRunClient(control_plane)
    return ReplayScreen(control_plane, SAGA, client=client)


def runs_screen(control_plane: ControlPlane) -> Screen[None]:
    client: Any = FakeRunClient(control_plane)
    return RunsScreen(control_plane, client=client)


async def still(pilot: Pilot[None]) -> None:
    """No cursor blinks, nothing left to draw."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def on_run(
    *keys: str, node: str | None = None, then: type[Screen[Any]] | None = None
) -> Callable[[Pilot[None]], Awaitable[None]]:
    """The run loaded and live, `node` selected, `keys` pressed, `then` on top."""

    async def run(pilot: Pilot[None]) -> None:
        screen = pilot.app.screen
        assert isinstance(screen, RunScreen)

        def ready() -> bool:
            return bool(
                screen.run is not None
                and screen.trace.last_seq == len(screen.client.runs[screen.run_id][1])  # type: ignore[attr-defined]
                and screen.stream_state == "live"
            )

        await until(pilot, ready, "the run, its history and its stream")
        if node is not None:
            screen.query_one(TraceTable).select(node)
        await pilot.press(*keys)
        if then is not None:
            await until(pilot, lambda: isinstance(pilot.app.screen, then), f"{then} on top")
        await still(pilot)

    return run


async def replay_at_15(pilot: Pilot[None]) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, ReplayScreen)
    await until(pilot, lambda: screen.shown_seq == 1, "the first event")
    screen.go_to(14)
    await until(pilot, lambda: screen.shown_seq == 15, "event 15")
    await still(pilot)


def on_runs(*keys: str, then: type[Screen[Any]] | None = None) -> Any:
    async def run(pilot: Pilot[None]) -> None:
        screen = pilot.app.screen
        assert isinstance(screen, RunsScreen)
        await until(pilot, lambda: screen.live == "live" and screen.counts, "live, counted")
        await pilot.press(*keys)
        if then is not None:
            await until(pilot, lambda: isinstance(pilot.app.screen, then), f"{then} on top")
            await until(
                pilot,
                lambda: "matched 2" in str(pilot.app.screen.query_one("#plan").render()),
                "dry run",
            )
        await still(pilot)

    return run


SCENES: dict[str, tuple[Callable[[ControlPlane], Screen[None]], Any]] = {
    "run_live_retrying": (run_screen(FLAKY), on_run(node="charge")),
    "run_attempts_and_history": (run_screen(FLAKY), on_run("enter", "i", node="charge")),
    "run_retry_prompt": (run_screen(FLAKY), on_run("r", node="charge", then=ActionPrompt)),
    "run_saga_compensated": (run_screen(SAGA), on_run(node="c")),
    "run_cancel_prompt": (run_screen(SAGA), on_run("x", then=ActionPrompt)),
    "replay_saga": (replay_screen, replay_at_15),
    "runs_live": (runs_screen, on_runs("down", "space", "down", "down", "space")),
    "runs_bulk_pause": (runs_screen, on_runs("space", "down", "space", "P", then=RunActionModal)),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("scene", list(SCENES))
def test_run_screens_snapshot(snap_compare: Any, scene: str, size: tuple[int, int]) -> None:
    first, run_before = SCENES[scene]
    app = ScreenApp(FakeControlPlane(), first)
    assert snap_compare(app, terminal_size=size, run_before=run_before)
