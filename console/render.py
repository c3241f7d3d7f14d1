"""Control plane messages as the console shows them: table rows and one-line events.

Pure functions of the protobuf messages, so that what an operator reads is unit-tested
without a terminal or a server.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import timestamp_pb2
from surefoot.v1 import approval_pb2, audit_service_pb2, common_pb2, run_pb2

RUN_COLUMNS = ("RUN", "WORKFLOW", "STATUS", "WAITING FOR / LAST ERROR", "UPDATED")
STEP_COLUMNS = ("NODE", "KIND", "STATUS", "ATTEMPTS", "LAST ERROR")
APPROVAL_COLUMNS = ("APPROVAL", "TITLE", "WORKFLOW", "APPROVERS", "REQUESTED", "SHOWN")
# A table cell or an event's data longer than this is cut: a row stays one line.
CELL_WIDTH = 60
DATA_WIDTH = 100

Row = tuple[str, ...]


def timestamp(value: timestamp_pb2.Timestamp) -> str:
    """UTC to the second, as the CLI prints it; "-" for an unset time."""
    if not value.seconds and not value.nanos:
        return "-"
    return value.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")


def event_time(value: timestamp_pb2.Timestamp) -> str:
    """UTC to the millisecond: events of one run are often within the same second."""
    if not value.seconds and not value.nanos:
        return "-"
    return value.ToDatetime().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def shorten(text: str, width: int = CELL_WIDTH) -> str:
    """One line of at most `width` characters, with "…" where it was cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def run_status(status: run_pb2.RunStatus.ValueType) -> str:
    return run_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_")


def step_status(status: run_pb2.StepStatus.ValueType) -> str:
    return run_pb2.StepStatus.Name(status).removeprefix("STEP_STATUS_")


def event_type(kind: run_pb2.EventType.ValueType) -> str:
    return run_pb2.EventType.Name(kind).removeprefix("EVENT_TYPE_")


def payload_value(payload: common_pb2.Payload) -> Any:
    """The JSON value of a payload; None when empty, the raw text when it is not JSON."""
    if not payload.data:
        return None
    text = payload.data.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def compact_json(payload: common_pb2.Payload, width: int = DATA_WIDTH) -> str:
    """A payload as JSON on one line, cut to `width`; "" when empty."""
    value = payload_value(payload)
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return shorten(text, width)


def pretty_json(payload: common_pb2.Payload) -> str:
    """A payload as indented JSON, for a text area an operator edits; "" when empty."""
    value = payload_value(payload)
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)


def error_line(error: run_pb2.StepError) -> str:
    if not error.type and not error.message:
        return ""
    return f"{error.type}: {error.message}" if error.type else error.message


def run_row(run: run_pb2.Run) -> Row:
    # A waiting run says what it waits for; one that needs attention says why it stopped.
    why = run.waiting_for or error_line(run.last_error)
    return (
        run.id,
        f"{run.workflow_name}@{run.workflow_version}",
        run_status(run.status),
        shorten(why),
        timestamp(run.updated_at),
    )


def run_header(run: run_pb2.Run) -> str:
    """The lines above a run's steps: what it is, where it is and why it stopped."""
    lines = [
        f"run {run.id}  {run.workflow_name}@{run.workflow_version}  {run_status(run.status)}",
        f"created {timestamp(run.created_at)}  updated {timestamp(run.updated_at)}"
        f"  closed {timestamp(run.closed_at)}",
    ]
    if run.current_node:
        lines.append(f"current node: {run.current_node}")
    if run.waiting_for:
        lines.append(f"waiting for: {run.waiting_for} (since {timestamp(run.waiting_since)})")
    if error := error_line(run.last_error):
        lines.append(f"last error: {shorten(error, 200)}")
    return "\n".join(lines)


def chain_alarm(verdict: audit_service_pb2.RunVerification) -> str:
    """The header line of a run whose history does not verify: where and how it was altered."""
    how = audit_service_pb2.ChainFault.Name(verdict.fault).removeprefix("CHAIN_FAULT_").lower()
    return f"history altered at seq {verdict.seq} ({how}): {verdict.detail}"


def progress_line(step: run_pb2.Step) -> str:
    """What the worker of a running attempt last said of its progress (heartbeat details)."""
    running = [a for a in step.attempts if a.outcome == run_pb2.ATTEMPT_OUTCOME_RUNNING]
    if not running or not running[-1].details.data:
        return ""
    return "progress: " + running[-1].details.data.decode("utf-8", "replace")


def step_row(step: run_pb2.Step) -> Row:
    kind = step.kind or "task"
    if step.step_type:
        kind = f"{kind} {step.step_type}"
    detail = error_line(step.last_error) or step.waiting_for or progress_line(step)
    return (
        step.node_id,
        kind,
        step_status(step.status),
        str(step.attempt) if step.attempt else "-",
        shorten(detail),
    )


def event_line(event: run_pb2.HistoryEvent) -> str:
    """seq, time, type, node, attempt, principal and the data, on one line."""
    cells = [
        f"{event.seq:>4}",
        event_time(event.time),
        f"{event_type(event.type):<20}",
        f"{event.node_id or '-':<12}",
        f"#{event.attempt}" if event.attempt else "-",
        event.principal or "-",
        compact_json(event.data),
    ]
    return "  ".join(cells).rstrip()


def scheduled_input(events: list[run_pb2.HistoryEvent], node_id: str) -> str | None:
    """The input of the last STEP_SCHEDULED event of `node_id`, pretty-printed, if any."""
    for event in reversed(events):
        if event.type == run_pb2.EVENT_TYPE_STEP_SCHEDULED and event.node_id == node_id:
            data = payload_value(event.data)
            if isinstance(data, dict) and "input" in data:
                return json.dumps(data["input"], indent=2, sort_keys=True)
    return None


def step_input(run: run_pb2.Run, events: list[run_pb2.HistoryEvent], node_id: str) -> str:
    """What a retry with edited input starts from: the step's current input.

    GetRun's step input when the control plane gives one, else the STEP_SCHEDULED event's.
    """
    for step in run.steps:
        if step.node_id == node_id and step.input.data:
            return pretty_json(step.input)
    return scheduled_input(events, node_id) or "{}"


def approvers(approval: approval_pb2.Approval) -> str:
    return ", ".join(approval.approvers) or "anyone authenticated"


def approval_row(approval: approval_pb2.Approval) -> Row:
    return (
        approval.id,
        shorten(approval.title, 40),
        f"{approval.workflow_name}@{approval.workflow_version}",
        shorten(approvers(approval), 30),
        timestamp(approval.requested_at),
        compact_json(approval.shown, CELL_WIDTH),
    )


def approval_details(approval: approval_pb2.Approval) -> str:
    """The approval under the cursor: exactly what the approver is shown, in full."""
    lines = [
        f"{approval.title or approval.id}",
        f"run {approval.run_id}  node {approval.node_id}  "
        f"{approval.workflow_name}@{approval.workflow_version}",
        f"approvers: {approvers(approval)}  deadline: {timestamp(approval.deadline)}",
        "shown:",
        pretty_json(approval.shown) or "{}",
    ]
    return "\n".join(lines)
