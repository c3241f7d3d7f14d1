"""An approval node: the run waits for a person's decision, with an optional deadline that
approves, rejects or escalates to more approvers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from surefoot.v1 import definition_pb2

from controlplane.engine import state as s
from controlplane.engine.checks import Problems, expression_problems, reference_problems
from controlplane.engine.events import (
    ApprovalDecided,
    CloseApproval,
    EscalateApproval,
    OpenApproval,
    TimerCommand,
    TimerFired,
)
from controlplane.engine.expressions import evaluate_shown
from controlplane.engine.kinds import NodeKind, TimerKind
from controlplane.engine.nodes.base import (
    NodeType,
    NotWaiting,
    OutputRefused,
    spec_next,
    waiting_step,
)
from controlplane.engine.step_types import StepCatalog

if TYPE_CHECKING:
    from controlplane.engine.flow import Flow

ON_TIMEOUT = {"", "approve", "reject", "escalate"}


@dataclass(frozen=True)
class ApprovalSpec:
    kind: ClassVar[NodeKind] = NodeKind.APPROVAL

    node_id: str
    next: str | None
    title: str
    approvers: tuple[str, ...]
    show: tuple[tuple[str, str], ...]
    timeout_seconds: float
    on_timeout: str
    escalate_to: tuple[str, ...]
    approved_next: str | None
    rejected_next: str | None
    # Neither the run's starter nor an earlier approver of the run may decide it.
    separation_of_duties: bool = False


class Approval(NodeType[ApprovalSpec]):
    kind = NodeKind.APPROVAL
    proto_field = "approval"
    timer_kinds = (TimerKind.APPROVAL_DEADLINE,)

    def compile(self, node: definition_pb2.Node) -> ApprovalSpec:
        a = node.approval
        return ApprovalSpec(
            node.id,
            spec_next(node),
            a.title or node.id,
            tuple(a.approvers),
            tuple(sorted(a.show.items())),
            a.timeout_seconds,
            a.on_timeout,
            tuple(a.escalate_to),
            a.approved_next or None,
            a.rejected_next or None,
            a.separation_of_duties,
        )

    def problems(
        self,
        where: str,
        label: str,
        node: definition_pb2.Node,
        ids: dict[str, int],
        catalog: StepCatalog,
    ) -> Problems:
        a = node.approval
        where = f"{where}.approval"
        problems: Problems = []
        for name, source in a.show.items():
            problems += expression_problems(f"{where}.show[{name}]", label, source)
        if a.timeout_seconds < 0:
            problems.append((f"{where}.timeout_seconds", f"{label}: must be >= 0"))
        if a.on_timeout not in ON_TIMEOUT:
            problems.append(
                (f"{where}.on_timeout", f"{label}: must be approve, reject or escalate")
            )
        if a.on_timeout == "escalate" and not a.escalate_to:
            problems.append((f"{where}.escalate_to", f"{label}: escalation needs escalate_to"))
        if a.on_timeout and not a.timeout_seconds:
            problems.append((f"{where}.timeout_seconds", f"{label}: on_timeout needs a timeout"))
        problems += reference_problems(
            f"{where}.approved_next", label, a.approved_next, ids, "node"
        )
        problems += reference_problems(
            f"{where}.rejected_next", label, a.rejected_next, ids, "node"
        )
        return problems

    def successors(self, spec: ApprovalSpec) -> list[str | None]:
        return [spec.approved_next, spec.rejected_next]

    def always_continues(self, spec: ApprovalSpec) -> bool:
        # Approval and rejection both lead on.
        return spec.approved_next is not None and spec.rejected_next is not None

    def enter(self, flow: Flow, spec: ApprovalSpec) -> None:
        context = flow.run.context()
        shown = {label: evaluate_shown(source, context) for label, source in spec.show}
        deadline = flow.time + spec.timeout_seconds if spec.timeout_seconds else None
        step = flow.new_step(spec.node_id, NodeKind.APPROVAL, s.STEP_WAITING)
        step.data = {
            "title": spec.title,
            "approvers": list(spec.approvers),
            "shown": shown,
            "deadline": deadline,
        }
        # Only when declared, so that the events of other approvals stay as they were.
        duties = {"separation_of_duties": True} if spec.separation_of_duties else {}
        # The decision checks it from the run's state (dispatch/operations/decide_approval.py).
        step.data |= duties
        request_approval(
            flow,
            step,
            spec.title,
            spec.approvers,
            shown,
            deadline,
            TimerKind.APPROVAL_DEADLINE,
            **duties,
        )

    def timer_fired(
        self, flow: Flow, step: s.StepState, spec: ApprovalSpec, event: TimerFired
    ) -> None:
        """The deadline passed without a decision: escalate once, else decide by default."""
        action = spec.on_timeout or "reject"
        if action == "escalate" and not step.data.get("escalated"):
            step.data["escalated"] = True
            step.data["approvers"] = list(step.data.get("approvers", [])) + list(spec.escalate_to)
            flow.record(
                "WAIT_TIMED_OUT",
                event.node_id,
                step.attempt,
                action="escalated",
                escalate_to=list(spec.escalate_to),
            )
            flow.transition.escalations.append(
                EscalateApproval(event.node_id, step.idempotency_key, spec.escalate_to)
            )
            return
        decide(
            flow,
            ApprovalDecided(
                event.node_id,
                action == "approve",
                "system:deadline",
                f"no decision by the deadline: default {action}",
                event.time,
                by_timeout=True,
            ),
        )

    def cancel(self, flow: Flow, step: s.StepState) -> None:
        flow.transition.close_approvals.append(
            CloseApproval(step.node_id, step.idempotency_key, "WITHDRAWN", "", flow.time)
        )
        super().cancel(flow, step)

    def describe_wait(self, step: s.StepState) -> str:
        who = ", ".join(step.data.get("approvers") or ["anyone"])
        return f"approval {step.data.get('title')!r} of {step.node_id!r} by {who}"


def decide(flow: Flow, event: ApprovalDecided) -> None:
    """A person (or the deadline) decided: go on, take the rejection route, or compensate."""
    step = waiting_step(flow, event.node_id, NodeKind.APPROVAL)
    if step is None:
        raise NotWaiting(f"approval {event.node_id!r} is not pending")
    if event.has_output:
        raise OutputRefused(
            "output", f"approval {event.node_id!r} is not an AI review: it takes no output"
        )
    decision = "approved" if event.approve else "rejected"
    output = {"approved": event.approve, "decided_by": event.principal, "comment": event.comment}
    step.complete(event.time, output)
    flow.record(
        "APPROVAL_DECIDED",
        event.node_id,
        step.attempt,
        principal=event.principal,
        decision=decision,
        comment=event.comment,
        title=step.data.get("title"),
        shown=step.data.get("shown"),
        by_timeout=event.by_timeout,
        **({"content_hash": event.content_hash} if event.content_hash else {}),
    )
    flow.transition.close_approvals.append(
        CloseApproval(
            event.node_id,
            step.idempotency_key,
            decision.upper(),
            event.principal,
            event.time,
            event.comment,
            event.by_timeout,
        )
    )
    flow.transition.cancel_timers.append((event.node_id, TimerKind.APPROVAL_DEADLINE))
    spec = flow.definition.nodes[event.node_id]
    assert isinstance(spec, ApprovalSpec)
    if event.approve:
        flow.advance(event.node_id, spec.approved_next or spec.next, step.output)
    elif spec.rejected_next:
        flow.enter(spec.rejected_next)
    else:
        flow.run.last_error = s.StepError(
            "Rejected", f"{spec.title!r} rejected by {event.principal}: {event.comment}"
        ).to_json()
        flow.start_compensation(f"approval {event.node_id!r} rejected")


def request_approval(
    flow: Flow,
    step: s.StepState,
    title: str,
    approvers: tuple[str, ...],
    shown: dict[str, Any],
    deadline: float | None,
    timer: TimerKind,
    **duties: Any,
) -> None:
    """Open an approval at `step` (an approval node's, or an AI node's review): the
    APPROVAL_REQUESTED event (with `duties`: separation_of_duties), the approvals row, and
    the `timer` of its deadline if any."""
    flow.record(
        "APPROVAL_REQUESTED",
        step.node_id,
        step.attempt,
        title=title,
        approvers=list(approvers),
        shown=shown,
        deadline=deadline,
        **duties,
    )
    flow.transition.open_approvals.append(
        OpenApproval(step.node_id, step.idempotency_key, title, approvers, shown, deadline)
    )
    if deadline is not None:
        flow.transition.timers.append(TimerCommand(step.node_id, timer, deadline))
