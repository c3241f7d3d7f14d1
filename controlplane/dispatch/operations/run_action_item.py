"""RunActionItem: one run of a bulk run action acted on, and its item marked so, in one commit.

The action is the committer's own one-run operation (CancelRun, PauseRun, ForkRun), applied
inside this one with the operation's creator as principal, its comment and its id; the
item's guarded update is in the same transaction (law 1), so a run is acted on exactly when
its item says so, never twice, whatever restarts in between. When the run's turn comes the
action may no longer apply (it ended, or someone paused it meanwhile): the one-run
operation refuses, as it would refuse an operator, and the item records the refusal as
why it was not applicable; the run is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, select

from controlplane import errors
from controlplane.dispatch.operations.base import Operation
from controlplane.dispatch.operations.cancel_run import CancelRun
from controlplane.dispatch.operations.fork_run import ForkRun
from controlplane.dispatch.operations.pause_run import PauseRun
from controlplane.dispatch.operations.run_changes import ReadBack
from controlplane.store import operation_queries as oq
from controlplane.store.codec import dump_json, load_json, to_datetime
from controlplane.store.schema import operation_items, operations

if TYPE_CHECKING:
    from controlplane.dispatch.delivery import Handout
    from controlplane.dispatch.sessions import SessionRegistry
    from controlplane.dispatch.transaction import Transaction

CANCEL = "cancel"
ABANDON = "abandon"
PAUSE = "pause"
RESUME = "resume"
FORK = "fork"
ACTIONS = (CANCEL, ABANDON, PAUSE, RESUME, FORK)
# The operation kind of each action, as `operations.kind` stores it and Operation.kind shows.
KINDS = {action: f"{action}-runs" for action in ACTIONS}
ACTION_OF_KIND = {kind: action for action, kind in KINDS.items()}
# What the one-run operations answer an action that does not apply to the run (it ended,
# is paused already, never entered the fork's node, ...). Anything else (the database went
# away) leaves the item pending: its claim runs out and it is acted on later.
_REFUSED = (
    errors.FailedPrecondition,
    errors.NotFound,
    errors.InvalidArgument,
    errors.AlreadyExists,
)


@dataclass(frozen=True)
class RunActionSpec:
    """What a run action does to each run, as `operations.action` keeps it (JSON)."""

    action: str
    # FORK: the node each fork executes from, and its input (`override`: the given `input`
    # rather than the parent's).
    from_node: str = ""
    override: bool = False
    input: Any = None

    @property
    def kind(self) -> str:
        return KINDS[self.action]

    def to_json(self) -> str:
        return dump_json(
            {
                "action": self.action,
                "from_node": self.from_node,
                "override": self.override,
                "input": self.input,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> RunActionSpec:
        saved = load_json(text)
        return cls(
            action=str(saved["action"]),
            from_node=str(saved.get("from_node", "")),
            override=bool(saved.get("override", False)),
            input=saved.get("input"),
        )


@dataclass
class RunActionItem(Operation):
    """Answers True if the run was acted on, False if the item found nothing to do."""

    operation_id: str
    namespace: str
    run_id: str
    spec: RunActionSpec
    principal: str
    comment: str
    _one_run: Operation = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._one_run = self._one_run_operation()

    def _one_run_operation(self) -> Operation:
        common = {"namespace": self.namespace, "run_id": self.run_id, "principal": self.principal}
        spec = self.spec
        if spec.action in (CANCEL, ABANDON):
            return CancelRun(
                **common,
                reason=self.comment,
                compensate=spec.action == ABANDON,
                read_back=False,
                operation_id=self.operation_id,
            )
        if spec.action in (PAUSE, RESUME):
            return PauseRun(
                **common,
                reason=self.comment,
                resume=spec.action == RESUME,
                operation_id=self.operation_id,
            )
        if spec.action == FORK:
            return ForkRun(
                **common,
                from_node=spec.from_node,
                input=spec.input,
                override=spec.override,
                comment=self.comment,
                operation_id=self.operation_id,
            )
        raise ValueError(f"unknown run action {spec.action!r}")

    def change_sessions(self, sessions: SessionRegistry, handout: Handout) -> None:
        # A resume releases the run's held tasks to be claimed in this very transaction.
        self._one_run.change_sessions(sessions, handout)

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        return self._one_run.run_ids(txn)

    def apply(self, txn: Transaction) -> bool:
        item = (
            operation_items.c.operation_id == self.operation_id,
            operation_items.c.run_id == self.run_id,
        )
        # Taken first, under the item's row lock: another control plane (or this one after
        # a lost claim) that reaches the same item finds it taken and does nothing.
        still_running = exists(
            select(operations.c.id).where(
                operations.c.id == self.operation_id, operations.c.state == oq.RUNNING
            )
        )
        when = to_datetime(txn.now)
        taken = txn.connection.execute(
            operation_items.update()
            .where(*item, operation_items.c.state == oq.PENDING, still_running)
            .values(state=oq.APPLIED, retried_at=when, settled_at=when, claimed_until=None)
        )
        if taken.rowcount == 0:
            return False
        try:
            # The one-run operations refuse before they change anything.
            result = self._one_run.apply(txn)
        except _REFUSED as exc:
            txn.connection.execute(
                operation_items.update()
                .where(*item)
                .values(state=oq.NOT_APPLICABLE, retried_at=None, reason=str(exc)[:2000])
            )
            return False
        if isinstance(result, ReadBack) and self.spec.action == FORK:
            txn.connection.execute(
                operation_items.update().where(*item).values(fork_run_id=result.run_id)
            )
        return True
