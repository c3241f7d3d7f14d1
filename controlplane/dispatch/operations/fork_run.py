"""ForkRun: a new run of a run's version that reuses its outputs before a node
(engine/forking.py says which, and why the fork is a new business action)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from controlplane import errors
from controlplane.dispatch.operations.base import Operation
from controlplane.dispatch.operations.run_changes import ReadBack
from controlplane.dispatch.starts import InvalidInput
from controlplane.engine import forking
from controlplane.engine.replay import RecordedEvent
from controlplane.store import run_queries
from controlplane.store.codec import load_json, to_datetime, to_epoch
from controlplane.store.schema import forks

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction


@dataclass
class ForkRun(Operation):
    """Answers the forked run's `CommittedRun`; `created` and `reused` say what was done."""

    namespace: str
    run_id: str
    from_node: str
    principal: str
    # The fork's input; None with `override` False: the parent's input.
    input: Any = None
    override: bool = False
    request_id: str = ""
    comment: str = ""
    # The durable operation (a bulk fork) acting, recorded in the fork's start.
    operation_id: str = ""
    created: bool = field(default=False, init=False)
    reused: list[str] = field(default_factory=list, init=False)

    # The run this request id started before, looked up before the runs are locked.
    _earlier: str | None = field(default=None, init=False, repr=False)

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        self._earlier = None
        if self.request_id:
            found = run_queries.by_request_id(txn.connection, self.namespace, [self.request_id])
            if found:
                # Locked with the parent, in the batch's id order, to be read back.
                self._earlier = found[0].id
                return (self.run_id, self._earlier)
        return (self.run_id,)

    def apply(self, txn: Transaction) -> ReadBack:
        connection = txn.connection
        parent = txn.batch.runs.get(self.run_id)
        if parent is None or parent.state.namespace != self.namespace:
            raise errors.NotFound(f"run {self.run_id} not found in namespace {self.namespace!r}")
        if self._earlier is not None:
            return self._earlier_fork(txn, self._earlier)
        # A fork runs the parent's pinned version.
        definition = txn.definition_of(parent)
        if self.from_node not in definition.nodes:
            raise errors.InvalidArgument.field(
                "from_node",
                f"{definition.name}@{definition.version} has no node {self.from_node!r}",
            )
        rows = run_queries.read_history(connection, self.run_id)
        events = [_recorded(row._mapping) for row in rows]
        events += [_recorded(row) for row in txn.batch.queued_history(self.run_id)]
        try:
            point = forking.fork_point(definition, self.run_id, events, self.from_node)
        except forking.ForkRefused as exc:
            raise errors.FailedPrecondition(str(exc)) from exc
        value = self.input if self.override else parent.state.input
        InvalidInput.check(definition, value, "input_override")
        state, transition = forking.fork_run(
            run_id=str(uuid.uuid4()),
            namespace=self.namespace,
            definition=definition,
            parent_id=self.run_id,
            point=point,
            input=value,
            time=txn.now,
            catalog=txn.catalog.catalog_for(self.namespace, connection, definition.step_types),
            uniform=txn.uniform,
            request_id=self.request_id,
            principal=self.principal,
            comment=self.comment,
            operation_id=self.operation_id,
        )
        txn.batch.add_run(
            state, parent.definition_id, uuid.uuid4().hex, self.request_id or None, transition
        )
        connection.execute(
            insert(forks).values(
                child_run_id=state.id,
                parent_run_id=self.run_id,
                namespace=self.namespace,
                node_id=self.from_node,
                principal=self.principal,
                created_at=to_datetime(txn.now),
            )
        )
        self.created = True
        self.reused = [step.node_id for step in point.reused]
        return ReadBack(self.namespace, state.id)

    def _earlier_fork(self, txn: Transaction, run_id: str) -> ReadBack:
        """The fork this request id made before; a run the id started otherwise is a
        conflict (request ids are one namespace-wide space, shared with StartRun)."""
        link = txn.connection.execute(
            select(forks.c.parent_run_id, forks.c.node_id).where(forks.c.child_run_id == run_id)
        ).first()
        if link is None or (link.parent_run_id, link.node_id) != (self.run_id, self.from_node):
            raise errors.AlreadyExists(
                f"request id {self.request_id!r} already started run {run_id}, "
                f"which is not a fork of run {self.run_id} from node {self.from_node!r}"
            )
        self.created = False
        steps = txn.batch.runs[run_id].state.steps
        self.reused = [node for node, step in steps.items() if "reused_from" in step.data]
        return ReadBack(self.namespace, run_id)


def _recorded(row: Any) -> RecordedEvent:
    """A history row (read, or queued by this batch) as replay reads it."""
    time = row["time"]
    return RecordedEvent(
        seq=row["seq"],
        type=row["type"],
        time=to_epoch(time),
        node_id=row["node_id"],
        attempt=row["attempt"],
        principal=row["principal"],
        data=load_json(row["data"]) or {},
    )
