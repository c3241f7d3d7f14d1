"""How a run action (a bulk cancel, abandon, pause, resume or fork) is printed: its plan,
its progress line, its fields in `operations show`, its items."""

from __future__ import annotations

from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import run_pb2

from controlplane.cli import output

# What each action does to a run, as the progress line says it.
DONE = {
    opb.RUN_ACTION_TYPE_CANCEL: "cancelled",
    opb.RUN_ACTION_TYPE_ABANDON: "abandoned",
    opb.RUN_ACTION_TYPE_PAUSE: "paused",
    opb.RUN_ACTION_TYPE_RESUME: "resumed",
    opb.RUN_ACTION_TYPE_FORK: "forked",
}
VERBS = {
    opb.RUN_ACTION_TYPE_CANCEL: "cancel",
    opb.RUN_ACTION_TYPE_ABANDON: "abandon",
    opb.RUN_ACTION_TYPE_PAUSE: "pause",
    opb.RUN_ACTION_TYPE_RESUME: "resume",
    opb.RUN_ACTION_TYPE_FORK: "fork",
}


def is_run_action(operation: opb.Operation) -> bool:
    return operation.HasField("action")


def print_plan(plan: opb.RunActionPlan, action: opb.RunAction) -> None:
    """What a run action will do: how many runs, how many it applies to, how long."""
    verb = VERBS.get(action.type, "act on")
    seconds = plan.expected_duration.ToNanoseconds() / 1e9
    print(
        f"{plan.matched} runs match; {plan.applicable} to {verb} at {plan.rate_per_second:g}/s: "
        f"about {duration(seconds)}"
    )
    for reason in plan.reasons:
        print(f"  not applicable, {reason.reason}: {reason.count}")
    if plan.workflows:
        output.print_table(
            ["workflow", "matched", f"to {verb}"],
            [
                (f"{w.workflow_name}@{w.workflow_version}", w.matched, w.applicable)
                for w in plan.workflows
            ],
        )


def no_longer_applicable(operation: opb.Operation) -> int:
    """Runs that were applicable when selected but not when their turn came."""
    return operation.progress.not_applicable - operation.run_plan.not_applicable


def progress_line(state: str, operation: opb.Operation) -> str:
    p = operation.progress
    late = no_longer_applicable(operation)
    selected_out = operation.run_plan.not_applicable
    return (
        f"{state.lower()}: {p.applied}/{operation.run_plan.applicable} "
        f"{DONE.get(operation.action.type, 'acted on')}, {p.pending} pending"
        + (f", {late} no longer applicable" if late else "")
        + (f", {p.cancelled} cancelled" if p.cancelled else "")
        + (f", {selected_out} not applicable when selected" if selected_out else "")
    )


def incomplete(operation: opb.Operation) -> int:
    """Runs the operation was to act on and did not (the plan's not applicable ones were
    never meant to be)."""
    p = operation.progress
    return p.pending + p.cancelled + no_longer_applicable(operation)


def fields(operation: opb.Operation) -> list[tuple[str, object]]:
    """The lines of `operations show` that are a run action's."""
    p = operation.progress
    return [
        ("selection", selection_text(operation.run_selection)),
        ("action", action_text(operation.action)),
        ("rate", f"{operation.rate_per_second:g}/s"),
        ("matched", p.matched),
        ("not applicable", f"{operation.run_plan.not_applicable} when selected"),
        ("pending", p.pending),
        (DONE.get(operation.action.type, "applied"), p.applied),
        ("no longer applicable", no_longer_applicable(operation)),
        ("cancelled", p.cancelled),
        ("measured rate", measured_rate(p)),
    ]


def item_row(item: opb.OperationItem) -> tuple[object, ...]:
    return (
        item.seq,
        item.run_id,
        f"{item.workflow_name}@{item.workflow_version}",
        output.enum_name(opb.OperationItemState, item.state),
        output.timestamp(item.applied_at) if item.HasField("applied_at") else "-",
        item.fork_run_id or output.truncate(" ".join(item.reason.split()), 80) or "-",
    )


ITEM_HEADERS = ["#", "run", "workflow", "state", "applied", "fork / why"]


def selection_text(selection: opb.RunSelection) -> str:
    f = selection.filter
    parts = [
        f"{name}={value}"
        for name, value in (
            ("workflow", f.workflow_name),
            ("version", f.workflow_version),
            ("id", f.run_id_prefix),
        )
        if value
    ]
    if f.statuses:
        names = (output.enum_name(run_pb2.RunStatus, s) for s in f.statuses)
        parts.append("status=" + "|".join(names))
    if f.HasField("created_after"):
        parts.append(f"created since {output.timestamp(f.created_after)}")
    if f.HasField("created_before"):
        parts.append(f"created before {output.timestamp(f.created_before)}")
    if selection.run_ids:
        parts.append(f"{len(selection.run_ids)} run(s)")
    if selection.all_runs:
        parts.append("all runs")
    if selection.limit:
        parts.append(f"limit {selection.limit}")
    return ", ".join(parts)


def action_text(action: opb.RunAction) -> str:
    verb = VERBS.get(action.type, "?")
    if action.type != opb.RUN_ACTION_TYPE_FORK:
        return verb
    given = " with input " + output.payload_text(action.input_override, 60)
    return f"fork from {action.from_node}" + (given if action.HasField("input_override") else "")


def measured_rate(p: opb.OperationProgress) -> str:
    if p.applied < 2:
        return "-"
    span = (p.last_applied_at.ToNanoseconds() - p.first_applied_at.ToNanoseconds()) / 1e9
    return f"{(p.applied - 1) / span:.1f}/s" if span > 0 else "-"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
