"""The spans of a run's trace, as plain records, and their ids.

Every id is derived, never random: the trace id is the one stored on the run, the root span's
id comes from it, an attempt's from its task id (the `traceparent` its worker was given), a
wait's from the run, node, entry and kind. Whoever emits a span, before or after a restart of
the control plane, or a re-export from history, names it the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def _span_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def root_span_id(trace_id: str) -> str:
    """The id of the run's own span, the root of its trace."""
    return _span_id(f"run:{trace_id}")


def wait_span_id(run_id: str, node_id: str, entry: int, what: str, attempt: int = 0) -> str:
    return _span_id(f"wait:{run_id}:{node_id}:{entry}:{what}:{attempt}")


@dataclass(frozen=True)
class AttemptSpan:
    """An attempt whose outcome was recorded, as its span will show it."""

    traceparent: str
    run_id: str
    workflow: str
    node_id: str
    step_type: str
    attempt: int
    idempotency_key: str
    outcome: str  # completed, failed or lost
    started: float | None  # epoch seconds, when the attempt was leased
    ended: float
    worker_id: str = ""
    error_type: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class RunSpan:
    """A run that ended: the root span of its trace, from its start to its end."""

    trace_id: str
    run_id: str
    namespace: str
    workflow: str
    status: str  # COMPLETED, FAILED, COMPENSATED or CANCELLED
    started: float
    ended: float
    error_type: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class WaitSpan:
    """Time a run spent waiting at a node: an approval, a timer, an event, a retry's backoff
    (`what`), a child of the run's root span."""

    trace_id: str
    span_id: str
    run_id: str
    workflow: str
    node_id: str
    what: str  # approval, timer, event or backoff
    started: float
    ended: float
    attempt: int = 0  # backoff: the attempt it delayed
    outcome: str = ""  # how the wait ended, when known (approved, rejected, fired, ...)
    attributes: dict[str, Any] = field(default_factory=dict)


TraceSpan = AttemptSpan | RunSpan | WaitSpan
