"""A finished run's trace rebuilt from its history: the same spans, with the same ids and
times, that the control plane emits live (`transitions` and the attempts' spans), for runs that
ended before tracing was on (`surefoot runs trace ID --otlp`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from surefoot.v1 import run_pb2

from console.trace import TERMINAL_EVENTS, event_data, seconds
from controlplane.engine.forking import ENTERING
from controlplane.engine.state import idempotency_key_for, task_id_for
from controlplane.store.run_batch import traceparent_for
from controlplane.tracing.spans import AttemptSpan, RunSpan, TraceSpan, WaitSpan, wait_span_id

_WAIT_STARTS = {
    "APPROVAL_REQUESTED": "approval",
    "SLEEP_STARTED": "timer",
    "EVENT_WAIT_STARTED": "event",
}
# Events that end a node's wait, and what the span says of how it ended.
_WAIT_ENDS = {
    "APPROVAL_DECIDED": "decided",
    "SLEEP_FIRED": "fired",
    "EVENT_RECEIVED": "received",
    "WAIT_TIMED_OUT": "timed_out",
    "STEP_CANCELLED": "cancelled",
    "STEP_SKIPPED": "skipped",
}
_OUTCOMES = {"ATTEMPT_COMPLETED": "completed", "ATTEMPT_FAILED": "failed", "ATTEMPT_LOST": "lost"}


class _Fold:
    def __init__(self, run: run_pb2.Run) -> None:
        self.run = run
        self.trace_id = run.trace_id
        self.workflow = f"{run.workflow_name}@{run.workflow_version}"
        self.spans: list[TraceSpan] = []
        self.step_types = {step.node_id: step.step_type for step in run.steps}
        self.entries: dict[str, int] = defaultdict(int)
        self.started: dict[tuple[str, int], tuple[float, str]] = {}
        # node -> (what, start, entry) of its open wait; (start, due, attempt) of its backoff.
        self.waits: dict[str, tuple[str, float, int]] = {}
        self.backoffs: dict[str, tuple[float, float, int]] = {}

    def add(self, event: run_pb2.HistoryEvent) -> None:
        kind = run_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_")
        time = seconds(event.time)
        node = event.node_id
        if kind in ENTERING:
            self.entries[node] += 1
        if kind in _WAIT_STARTS:
            self.waits[node] = (_WAIT_STARTS[kind], time, max(1, self.entries[node]))
        elif kind == "ATTEMPT_STARTED":
            worker = str(event_data(event).get("worker_id") or event.principal)
            self.started[(node, event.attempt)] = (time, worker)
            self._end_backoff(node, time)
        elif kind in _OUTCOMES:
            self._attempt(event, kind, time)
        elif kind == "RETRY_SCHEDULED":
            due = float(event_data(event).get("due_at") or time)
            self.backoffs[node] = (time, due, event.attempt)
        elif kind in _WAIT_ENDS:
            data = event_data(event)
            if kind == "WAIT_TIMED_OUT" and data.get("action") == "escalated":
                return  # still waiting, for someone else now
            outcome = str(data.get("decision") or _WAIT_ENDS[kind])
            self._end_wait(node, time, outcome)
            self._end_backoff(node, time)
        elif kind in TERMINAL_EVENTS:
            for waiting in list(self.waits):
                self._end_wait(waiting, time, "")
            for delayed in list(self.backoffs):
                self._end_backoff(delayed, time)
            self._root(TERMINAL_EVENTS[kind], time)

    def _attempt(self, event: run_pb2.HistoryEvent, kind: str, time: float) -> None:
        node, attempt = event.node_id, event.attempt
        started, worker = self.started.pop((node, attempt), (None, event.principal))
        key = idempotency_key_for(self.run.id, node, max(1, self.entries[node]))
        data = event_data(event)
        found = data.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        error_type = error_message = ""
        if kind == "ATTEMPT_FAILED":
            error_type = str(error.get("type") or "Error")
            error_message = str(error.get("message") or "")
        elif kind == "ATTEMPT_LOST":
            error_type, error_message = "AttemptLost", str(data.get("reason") or "")
        self.spans.append(
            AttemptSpan(
                traceparent=traceparent_for(self.trace_id, task_id_for(key, attempt)),
                run_id=self.run.id,
                workflow=self.workflow,
                node_id=node,
                step_type=self.step_types.get(node, ""),
                attempt=attempt,
                idempotency_key=key,
                outcome=_OUTCOMES[kind],
                started=started,
                ended=time,
                worker_id=worker if worker != "system" else "",
                error_type=error_type,
                error_message=error_message,
            )
        )

    def _end_wait(self, node: str, time: float, outcome: str) -> None:
        if node not in self.waits:
            return
        what, start, entry = self.waits.pop(node)
        self.spans.append(
            WaitSpan(
                trace_id=self.trace_id,
                span_id=wait_span_id(self.run.id, node, entry, what),
                run_id=self.run.id,
                workflow=self.workflow,
                node_id=node,
                what=what,
                started=start,
                ended=max(time, start),
                outcome=outcome,
            )
        )

    def _end_backoff(self, node: str, time: float) -> None:
        if node not in self.backoffs:
            return
        start, due, attempt = self.backoffs.pop(node)
        entry = max(1, self.entries[node])
        self.spans.append(
            WaitSpan(
                trace_id=self.trace_id,
                span_id=wait_span_id(self.run.id, node, entry, "backoff", attempt),
                run_id=self.run.id,
                workflow=self.workflow,
                node_id=node,
                what="backoff",
                started=start,
                ended=max(min(due, time), start),
                attempt=attempt,
            )
        )

    def _root(self, status: str, time: float) -> None:
        run = self.run
        failed = status != "COMPLETED" and run.HasField("last_error")
        started = seconds(run.created_at)
        self.spans.append(
            RunSpan(
                trace_id=self.trace_id,
                run_id=run.id,
                namespace=run.namespace,
                workflow=self.workflow,
                status=status,
                started=started,
                ended=max(seconds(run.closed_at) if run.HasField("closed_at") else time, started),
                error_type=run.last_error.type if failed else "",
                error_message=run.last_error.message if failed else "",
            )
        )


def spans_of_history(run: run_pb2.Run, events: Sequence[run_pb2.HistoryEvent]) -> list[TraceSpan]:
    """The spans of `run`'s trace that its history `events` (all of them, in seq order) end."""
    fold = _Fold(run)
    for event in events:
        fold.add(event)
    return fold.spans
