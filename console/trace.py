"""A run's trace: its steps and their attempts, retries and waits as spans on a time axis.

Built from the run's history alone, one event at a time (`Trace.add`), so a live screen
appends what WatchRun delivers and a replay builds the trace up to the event it shows. No
I/O and no clock: whoever draws an open span says what "now" is.

Spans of a step, by what the step was doing:
- QUEUED: scheduled (or due again after a backoff) and not yet started by a worker;
- ATTEMPT: a worker ran an attempt (its outcome: completed, failed, lost, cancelled);
- BACKOFF: the retry delay after a failed attempt;
- WAIT: an approval, a timer (sleep), an external event, a dead letter waiting for an
  operator, a fan-out waiting for its branches, or the whole run paused.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from surefoot.v1 import run_pb2

# The row of the run itself (its whole span and its pauses), above its steps.
RUN_ROW = "(run)"
COMPENSATION_SUFFIX = ".compensation"
TERMINAL_EVENTS = {
    "RUN_COMPLETED": "COMPLETED",
    "RUN_FAILED": "FAILED",
    "RUN_CANCELLED": "CANCELLED",
    "RUN_COMPENSATED": "COMPENSATED",
}


class SpanKind(enum.Enum):
    QUEUED = "queued"
    ATTEMPT = "attempt"
    BACKOFF = "backoff"
    WAIT = "wait"
    MARK = "mark"  # an instant: a branch taken, an output reused


@dataclass
class Span:
    """Part of a step's time; `end` None while it lasts."""

    kind: SpanKind
    start: float
    end: float | None = None
    # ATTEMPT: running, completed, failed, lost, cancelled. WAIT: approval, timer, event,
    # dead_letter, branches, paused. MARK: branch, reused.
    what: str = ""
    attempt: int = 0
    # When a timer or a retry delay is due (known in advance).
    due: float | None = None
    detail: str = ""
    # Not from history: an attempt GetRun reports running (history records an attempt's
    # start only with its result), replaced by the history's own once that arrives.
    provisional: bool = False

    def close(self, time: float) -> None:
        if self.end is None:
            self.end = max(time, self.start)


@dataclass
class StepTrace:
    node_id: str
    kind: str = "task"
    status: str = "SCHEDULED"
    attempts: int = 0
    spans: list[Span] = field(default_factory=list)
    first_seq: int = 0
    last_seq: int = 0

    def open_spans(self) -> list[Span]:
        return [span for span in self.spans if span.end is None]

    def close_open(self, time: float, kinds: tuple[SpanKind, ...] = tuple(SpanKind)) -> None:
        for span in self.open_spans():
            if span.kind in kinds:
                span.close(time)

    def attempt_spans(self) -> list[Span]:
        return [span for span in self.spans if span.kind is SpanKind.ATTEMPT]

    @property
    def start(self) -> float | None:
        return min((span.start for span in self.spans), default=None)

    def end(self, now: float) -> float | None:
        """When the step's last span ended (`now` if one is still open)."""
        if not self.spans:
            return None
        return max(now if span.end is None else span.end for span in self.spans)


class Trace:
    """The trace of one run, as of the events added so far (in seq order, without gaps)."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None  # when the run ended
        self.last_time: float | None = None
        self.last_seq = 0
        self.status = ""  # the run's end status; "" while it has not ended
        self.run = StepTrace(RUN_ROW, kind="run", status="RUNNING")
        self._steps: dict[str, StepTrace] = {}

    @property
    def steps(self) -> list[StepTrace]:
        """The steps in the order they were first entered."""
        return list(self._steps.values())

    def step(self, node_id: str) -> StepTrace | None:
        return self.run if node_id == RUN_ROW else self._steps.get(node_id)

    @property
    def ended(self) -> bool:
        return self.end is not None

    def extend(self, events: list[run_pb2.HistoryEvent]) -> None:
        for event in events:
            self.add(event)

    def add(self, event: run_pb2.HistoryEvent) -> None:
        """Apply one event; an event at or before the last seq is ignored (a repeat)."""
        if event.seq <= self.last_seq:
            return
        self.last_seq = event.seq
        time = seconds(event.time)
        if self.start is None:
            self.start = time
            self.run.spans.append(Span(SpanKind.ATTEMPT, time, what="run"))
        self.last_time = time
        kind = run_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_")
        data = event_data(event)
        if kind in TERMINAL_EVENTS:
            self._ended(time, TERMINAL_EVENTS[kind])
        elif kind == "RUN_PAUSED":
            by = event.principal or "?"
            self.run.spans.append(Span(SpanKind.WAIT, time, what="paused", detail=f"by {by}"))
            self.run.status = "PAUSED"
        elif kind == "RUN_RESUMED":
            self.run.close_open(time, (SpanKind.WAIT,))
            self.run.status = "RUNNING"
        elif kind == "COMPENSATION_STARTED":
            self.run.status = "COMPENSATING"
        elif event.node_id:
            self._step_event(kind, self._entered(event), event, time, data)

    def note_running(self, node_id: str, attempt: int, started_at: float, worker: str) -> None:
        """An attempt the run reports running: drawn from its start until history has it.

        History records an attempt's start together with its result, so without this a
        long attempt would show as queued until it ends.
        """
        step = self._steps.get(node_id)
        if step is None or self.ended:
            return
        if any(s.kind is SpanKind.ATTEMPT and s.attempt == attempt for s in step.spans):
            return
        step.close_open(started_at, (SpanKind.QUEUED, SpanKind.BACKOFF))
        running = Span(SpanKind.ATTEMPT, started_at, None, "running", attempt, detail=worker)
        running.provisional = True
        step.spans.append(running)
        step.attempts = max(step.attempts, attempt)
        step.status = "RUNNING"

    def _entered(self, event: run_pb2.HistoryEvent) -> StepTrace:
        step = self._steps.get(event.node_id)
        if step is None:
            kind = "compensation" if event.node_id.endswith(COMPENSATION_SUFFIX) else "task"
            step = self._steps[event.node_id] = StepTrace(event.node_id, kind, first_seq=event.seq)
        step.last_seq = event.seq
        return step

    def _step_event(
        self,
        kind: str,
        step: StepTrace,
        event: run_pb2.HistoryEvent,
        time: float,
        data: dict[str, Any],
    ) -> None:
        attempt = event.attempt
        if kind in ("STEP_SCHEDULED", "STEP_RETRIED"):
            step.close_open(time, (SpanKind.WAIT, SpanKind.QUEUED))
            if kind == "STEP_SCHEDULED" or "input" in data:
                step.spans.append(Span(SpanKind.QUEUED, time, attempt=attempt))
            step.status = "SCHEDULED"
        elif kind == "ATTEMPT_STARTED":
            step.spans = [s for s in step.spans if not (s.provisional and s.attempt == attempt)]
            step.close_open(time, (SpanKind.QUEUED, SpanKind.BACKOFF))
            worker = str(data.get("worker_id") or event.principal)
            step.spans.append(Span(SpanKind.ATTEMPT, time, None, "running", attempt, detail=worker))
            step.attempts = max(step.attempts, attempt)
            step.status = "RUNNING"
        elif kind in ("ATTEMPT_COMPLETED", "ATTEMPT_FAILED", "ATTEMPT_LOST"):
            outcome = kind.removeprefix("ATTEMPT_").lower()
            for span in step.open_spans():
                if span.kind is SpanKind.ATTEMPT and span.attempt == attempt:
                    span.close(time)
                    span.what = outcome
                    span.detail = _error_text(data) or span.detail
            step.status = {"completed": "COMPLETED", "failed": "FAILED", "lost": "LOST"}[outcome]
            if outcome == "completed":
                self._compensated(step)
        elif kind == "RETRY_SCHEDULED":
            due = float(data.get("due_at") or time)
            step.spans.append(Span(SpanKind.BACKOFF, time, due, attempt=attempt, due=due))
            # Due, then queued until a worker starts it.
            step.spans.append(Span(SpanKind.QUEUED, due, attempt=attempt))
            step.status = "RETRY_WAIT"
        elif kind == "STEP_DEAD_LETTERED":
            error = _error_text(data)
            step.spans.append(Span(SpanKind.WAIT, time, what="dead_letter", detail=error))
            step.status = "DEAD_LETTERED"
        elif kind == "STEP_SKIPPED":
            step.close_open(time)
            step.status = "SKIPPED"
        elif kind == "STEP_CANCELLED":
            step.close_open(time)
            for span in step.attempt_spans():
                if span.what == "running":
                    span.what = "cancelled"
            step.status = "CANCELLED"
        elif kind == "APPROVAL_REQUESTED":
            step.kind = "approval"
            title = str(data.get("title") or "")
            step.spans.append(Span(SpanKind.WAIT, time, what="approval", detail=title))
            step.status = "WAITING"
        elif kind == "APPROVAL_DECIDED":
            step.close_open(time)
            step.status = "APPROVED" if data.get("decision") == "approved" else "REJECTED"
        elif kind == "SLEEP_STARTED":
            step.kind = "sleep"
            timer_due = _float(data.get("due_at"))
            step.spans.append(Span(SpanKind.WAIT, time, what="timer", due=timer_due))
            step.status = "WAITING"
        elif kind == "SLEEP_FIRED":
            step.close_open(time)
            step.status = "COMPLETED"
        elif kind == "EVENT_WAIT_STARTED":
            step.kind = "wait_event"
            name = str(data.get("event_name") or "")
            step.spans.append(Span(SpanKind.WAIT, time, what="event", detail=name))
            step.status = "WAITING"
        elif kind == "EVENT_RECEIVED":
            step.close_open(time)
            step.status = "COMPLETED"
        elif kind == "WAIT_TIMED_OUT":
            if data.get("action") != "escalated":
                step.close_open(time)
                step.status = "TIMED_OUT"
        elif kind == "BRANCH_TAKEN":
            step.kind = "switch"
            case = str(data.get("case"))
            step.spans.append(Span(SpanKind.MARK, time, time, "branch", detail=case))
            step.status = "COMPLETED"
        elif kind == "PARALLEL_STARTED":
            step.kind = "parallel"
            step.spans.append(Span(SpanKind.WAIT, time, what="branches"))
            step.status = "WAITING"
        elif kind == "PARALLEL_JOINED":
            step.close_open(time)
            step.status = "COMPLETED"
        elif kind == "STEP_REUSED":
            step.spans.append(Span(SpanKind.MARK, time, time, "reused"))
            step.status = "REUSED"

    def _compensated(self, compensation: StepTrace) -> None:
        """A compensation that completed undid its step."""
        if compensation.kind != "compensation":
            return
        undone = self._steps.get(compensation.node_id.removesuffix(COMPENSATION_SUFFIX))
        if undone is not None:
            undone.status = "COMPENSATED"

    def _ended(self, time: float, status: str) -> None:
        self.end = time
        self.status = status
        self.run.status = status
        self.run.close_open(time)
        for step in self._steps.values():
            step.close_open(time)


def seconds(value: Any) -> float:
    """A protobuf Timestamp as seconds since the epoch (0.0 when unset)."""
    return float(value.seconds) + value.nanos / 1e9


def event_data(event: run_pb2.HistoryEvent) -> dict[str, Any]:
    """An event's JSON attributes; {} when there are none or they are not a JSON object."""
    if not event.data.data:
        return {}
    try:
        value = json.loads(event.data.data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _error_text(data: dict[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict):
        return f"{error.get('type') or ''}: {error.get('message') or ''}".strip(": ")
    reason = data.get("reason")
    return str(reason) if reason else ""
