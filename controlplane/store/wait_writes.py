"""The rows behind waiting runs: timers, approvals and event waits, written with a batch.

A transition can open and close the same wait in one batch (an event kept for the run is
consumed the moment its wait opens), so inserts still pending are cancelled rather than
written and deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, bindparam

from controlplane.engine.events import OpenEventWait, Transition
from controlplane.engine.state import RunState
from controlplane.store.codec import dump_json, optional_datetime, to_datetime
from controlplane.store.schema import approvals, event_waits, timers

TimerKey = tuple[str, str, str]
WaitKey = tuple[str, str]


@dataclass
class WaitWrites:
    timer_inserts: dict[TimerKey, dict[str, Any]] = field(default_factory=dict)
    timer_deletes: set[TimerKey] = field(default_factory=set)
    approval_inserts: dict[str, dict[str, Any]] = field(default_factory=dict)
    approval_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    wait_inserts: dict[WaitKey, dict[str, Any]] = field(default_factory=dict)
    wait_deletes: set[WaitKey] = field(default_factory=set)
    # Waits opened in this batch, for the committer to match against kept events.
    opened: list[tuple[RunState, OpenEventWait]] = field(default_factory=list)
    # Earliest timer written in this batch (epoch), so the committer wakes for it.
    earliest_timer: float | None = None

    def record(self, state: RunState, transition: Transition, now: float) -> None:
        run_id = state.id
        for node_id, kind in transition.cancel_timers:
            key = (run_id, node_id, kind)
            if self.timer_inserts.pop(key, None) is None:
                self.timer_deletes.add(key)
        for timer in transition.timers:
            self.timer_inserts[(run_id, timer.node_id, timer.kind)] = {
                "run_id": run_id,
                "node_id": timer.node_id,
                "kind": timer.kind,
                "namespace": state.namespace,
                "due_at": to_datetime(timer.due_at),
            }
            if self.earliest_timer is None or timer.due_at < self.earliest_timer:
                self.earliest_timer = timer.due_at
        for opened in transition.open_approvals:
            self.approval_inserts[opened.approval_id] = {
                "id": opened.approval_id,
                "namespace": state.namespace,
                "run_id": run_id,
                "node_id": opened.node_id,
                "workflow_name": state.workflow_name,
                "workflow_version": state.workflow_version,
                "title": opened.title,
                "approvers": dump_json(list(opened.approvers)),
                "shown": dump_json(opened.shown),
                "status": "PENDING",
                "requested_at": to_datetime(now),
                "deadline": optional_datetime(opened.deadline),
                "decided_by": None,
                "decided_at": None,
                "comment": None,
                "by_timeout": False,
                "escalated_to": "[]",
            }
        for escalation in transition.escalations:
            target = escalation.approval_id
            row = self.approval_inserts.get(target) or self.approval_updates.setdefault(target, {})
            row["escalated_to"] = dump_json(list(escalation.escalate_to))
            approvers = list(state.steps[escalation.node_id].data.get("approvers", []))
            row["approvers"] = dump_json(approvers)
        for closed in transition.close_approvals:
            target = closed.approval_id
            values = {
                "status": closed.status,
                "decided_by": closed.decided_by or None,
                "decided_at": to_datetime(closed.decided_at),
                "comment": closed.comment,
                "by_timeout": closed.by_timeout,
            }
            row = self.approval_inserts.get(target) or self.approval_updates.setdefault(target, {})
            row.update(values)
        for node_id in transition.close_waits:
            wait_key = (run_id, node_id)
            if self.wait_inserts.pop(wait_key, None) is None:
                self.wait_deletes.add(wait_key)
            self.opened = [
                (s, w) for s, w in self.opened if not (s.id == run_id and w.node_id == node_id)
            ]
        for wait in transition.open_waits:
            self.wait_inserts[(run_id, wait.node_id)] = {
                "run_id": run_id,
                "node_id": wait.node_id,
                "namespace": state.namespace,
                "event_name": wait.event_name,
                "correlation_key": wait.correlation_key,
                "created_at": to_datetime(now),
            }
            self.opened.append((state, wait))

    def flush(self, c: Connection) -> None:
        if self.timer_deletes:
            c.execute(
                timers.delete().where(
                    and_(
                        timers.c.run_id == bindparam("b_run"),
                        timers.c.node_id == bindparam("b_node"),
                        timers.c.kind == bindparam("b_kind"),
                    )
                ),
                [{"b_run": r, "b_node": n, "b_kind": k} for r, n, k in self.timer_deletes],
            )
        if self.timer_inserts:
            c.execute(timers.insert(), list(self.timer_inserts.values()))
        if self.approval_inserts:
            c.execute(approvals.insert(), list(self.approval_inserts.values()))
        for target, values in self.approval_updates.items():
            c.execute(approvals.update().where(approvals.c.id == target).values(**values))
        if self.wait_deletes:
            c.execute(
                event_waits.delete().where(
                    and_(
                        event_waits.c.run_id == bindparam("b_run"),
                        event_waits.c.node_id == bindparam("b_node"),
                    )
                ),
                [{"b_run": r, "b_node": n} for r, n in self.wait_deletes],
            )
        if self.wait_inserts:
            c.execute(event_waits.insert(), list(self.wait_inserts.values()))
