"""What an operator's change to one run answers: the run as it was committed.

CancelRun and TriageStep answer a `CommittedRun`, read inside the transaction that made the
change, after its writes: the API turns it into the `Run` message without reading the
database again, and it is exactly what a read after the commit would have shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane import errors
from controlplane.engine import machine
from controlplane.engine.events import RunEvent
from controlplane.engine.state import RunState
from controlplane.engine.triage import NotDeadLettered
from controlplane.store.run_queries import RunView

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction


@dataclass(frozen=True)
class CommittedRun:
    """A run after an operation's transaction: `convert.run_detail(view)` is its message."""

    state: RunState
    # What `run_queries.get_run` reads, read in the committing transaction.
    view: RunView


@dataclass(frozen=True)
class ReadBack:
    """Stands for the `CommittedRun` of a run until the transaction has written it."""

    namespace: str
    run_id: str


def change_run(
    txn: Transaction, namespace: str, run_id: str, event: RunEvent, *, read_back: bool
) -> ReadBack | RunState:
    """Apply an operator's event to a run of `namespace`.

    Returns:
        A `ReadBack` that the transaction turns into the `CommittedRun`, or, without
        `read_back`, the run's state as this operation left it.

    Raises:
        errors.NotFound: no such run in the namespace.
        errors.FailedPrecondition: the run has ended, or has no such dead letter.
    """
    loaded = txn.batch.runs.get(run_id)
    if loaded is None or loaded.state.namespace != namespace:
        raise errors.NotFound(f"run {run_id} not found in namespace {namespace!r}")
    try:
        txn.transition(run_id, event)
    except (machine.RunClosed, NotDeadLettered) as exc:
        raise errors.FailedPrecondition(str(exc)) from exc
    if read_back:
        return ReadBack(namespace, run_id)
    return txn.batch.runs[run_id].state
