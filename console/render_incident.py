"""Dead letters, redrive plans and operations as the console shows them.

Pure functions of the protobuf messages (like render.py), so what an operator reads during an
incident is unit-tested without a terminal or a server.
"""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from console.render import Row, error_line, pretty_json, shorten, step_status, timestamp
from console.render_ai import last_reply_lines

GROUP_COLUMNS = ("COUNT", "WORKFLOW", "STEP", "IDEMP.", "ERROR", "FIRST SEEN", "LAST SEEN")
ITEM_COLUMNS = ("RUN", "NODE", "ATT.", "DEAD-LETTERED", "MESSAGE")
OPERATION_COLUMNS = ("OPERATION", "KIND", "STATE", "DONE", "BY", "STARTED", "COMMENT")

# What an idempotency declaration means for a redrive, in the operator's words.
IDEMPOTENCY = {
    "key": "key: the step dedupes with its idempotency key; safe to retry",
    "natural": "natural: repeating it has no further effect; safe to retry",
    "none": "none: it may have happened before failing; a redrive skips it unless told",
}


def short_time(value: timestamp_pb2.Timestamp) -> str:
    """`09-21 14:13:20` (UTC): the date matters in an incident, the year does not."""
    if not value.seconds and not value.nanos:
        return "-"
    return value.ToDatetime().strftime("%m-%d %H:%M:%S")


def duration(value: duration_pb2.Duration | float) -> str:
    """`1h 2m 5s`, `6s`, `0.4s`."""
    seconds = value if isinstance(value, float) else value.ToNanoseconds() / 1e9
    if seconds < 10:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] if hours else []
    if minutes or hours:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


# -- dead-letter groups and items ------------------------------------------------------------


def group_key(group: ws.DeadLetterGroup) -> str:
    """One group: what ListDeadLetters groups by."""
    return "\x1f".join(
        (
            group.workflow_name,
            group.workflow_version,
            group.step_type,
            group.step_version,
            group.error_type,
            group.error_signature,
        )
    )


def versioned(name: str, version: str) -> str:
    return f"{name}@{version}" if version else name or "-"


def group_row(group: ws.DeadLetterGroup) -> Row:
    return (
        str(group.count),
        versioned(group.workflow_name, group.workflow_version),
        versioned(group.step_type, group.step_version),
        group.idempotency or "-",
        group.error_type or "-",
        short_time(group.oldest),
        short_time(group.newest),
    )


def group_details(group: ws.DeadLetterGroup) -> str:
    """The group under the cursor, in full: what the incident's failures have in common."""
    return "\n".join(
        [
            f"{group.count} dead letters · {group.error_type or 'error'}",
            f"signature: {group.error_signature or '-'}",
            f"workflow {versioned(group.workflow_name, group.workflow_version)} · "
            f"step {versioned(group.step_type, group.step_version)}",
            f"first seen {timestamp(group.oldest)} · last seen {timestamp(group.newest)}",
            f"idempotency {IDEMPOTENCY.get(group.idempotency, group.idempotency or '-')}",
            f"latest: {group.sample_message} (run {group.sample_run_id})",
        ]
    )


def group_summary(group: ws.DeadLetterGroup) -> str:
    """Two lines of the group, for a dialog about it."""
    return (
        f"{group.count} × {group.error_type or 'error'} · "
        f"{versioned(group.workflow_name, group.workflow_version)} · "
        f"{versioned(group.step_type, group.step_version)} ({group.idempotency or '-'})\n"
        f"first seen {timestamp(group.oldest)} · last seen {timestamp(group.newest)}"
    )


def dead_letter_key(dead_letter: ws.DeadLetter) -> str:
    return f"{dead_letter.run_id}:{dead_letter.node_id}"


def item_row(dead_letter: ws.DeadLetter) -> Row:
    return (
        dead_letter.run_id,
        dead_letter.node_id,
        str(dead_letter.attempts),
        short_time(dead_letter.dead_lettered_at),
        shorten(dead_letter.error_message, 200),
    )


def attempt_line(attempt: run_pb2.Attempt) -> str:
    outcome = run_pb2.AttemptOutcome.Name(attempt.outcome).removeprefix("ATTEMPT_OUTCOME_")
    error = error_line(attempt.error)
    when = f"{timestamp(attempt.started_at)} → {timestamp(attempt.ended_at)}"
    worker = attempt.worker_id or "-"
    line = f"#{attempt.number} {outcome:<9} {when}  worker {worker}"
    return f"{line}\n     {error}" if error else line


def dead_letter_details(dead_letter: ws.DeadLetter, step: run_pb2.Step | None) -> str:
    """One dead letter in full: the error with its details, the input, every attempt."""
    lines = [
        f"run {dead_letter.run_id} · node {dead_letter.node_id}"
        + (" · compensation" if dead_letter.compensation else ""),
        f"workflow {versioned(dead_letter.workflow_name, dead_letter.workflow_version)} · "
        f"step {versioned(dead_letter.step_type, dead_letter.step_version)} · "
        f"idempotency {dead_letter.idempotency or '-'}",
        f"dead-lettered {timestamp(dead_letter.dead_lettered_at)} after "
        f"{dead_letter.attempts} attempt(s)",
        "",
        f"error: {dead_letter.error_type}",
        dead_letter.error_message,
    ]
    if step is not None:
        # An AI step out of repairs: its last raw reply first, not buried in the details.
        if reply := last_reply_lines(step.last_error.details):
            lines += ["", *reply]
        if step.last_error.details:
            lines += ["", "details:", step.last_error.details]
        lines += ["", f"status: {step_status(step.status)}"]
        if step.idempotency_key:
            lines.append(f"idempotency key: {step.idempotency_key}")
        lines += ["", "input:", pretty_json(step.input) or "(none)", "", "attempts:"]
        lines += [attempt_line(a) for a in step.attempts] or ["(none recorded)"]
    return "\n".join(lines)


# -- redrives and operations -----------------------------------------------------------------


def plan_text(plan: opb.RedrivePlan) -> str:
    """A dry run's answer: how many, which are unsafe, how long at the rate."""
    lines = [
        f"matched {plan.matched} · to redrive {plan.to_redrive} · unsafe (idempotency none) "
        f"{plan.unsafe}",
        f"at {plan.rate_per_second:g}/s: about {duration(plan.expected_duration)}",
    ]
    for step_type in plan.step_types:
        excluded = " · NOT redriven (unsafe)" if step_type.excluded else ""
        lines.append(
            f"  {step_type.count} × {versioned(step_type.step_type, step_type.step_version)} "
            f"({step_type.idempotency}){excluded}"
        )
    return "\n".join(lines)


def operation_state(operation: opb.Operation) -> str:
    state = opb.OperationState.Name(operation.state).removeprefix("OPERATION_STATE_")
    return "DONE" if operation.done and state == "COMPLETED" else state


def operation_done(operation: opb.Operation) -> tuple[int, int]:
    """(settled, to settle): a redrive's retried items that finished, of those it retries."""
    progress = operation.progress
    if operation.kind == "redrive":
        target = progress.matched - progress.excluded
        settled = (
            progress.succeeded
            + progress.failed_again
            + progress.interrupted
            + progress.not_retried
            + progress.cancelled
        )
        return settled, target
    return progress.applied + progress.not_applicable + progress.cancelled, progress.matched


def operation_row(operation: opb.Operation) -> Row:
    settled, target = operation_done(operation)
    return (
        operation.id,
        operation.kind,
        operation_state(operation),
        f"{settled}/{target}",
        operation.created_by or "-",
        short_time(operation.created_at),
        shorten(operation.comment, 60),
    )


def progress_bar(done: int, total: int, width: int = 30) -> str:
    if total <= 0:
        return "[" + "█" * width + "]"
    filled = min(width, round(width * done / total))
    return "[" + "█" * filled + "·" * (width - filled) + f"] {100 * done // total}%"


def operation_progress(operation: opb.Operation) -> str:
    """The progress panel: counts from the database, as WatchOperation sends them."""
    progress = operation.progress
    settled, target = operation_done(operation)
    lines = [
        f"{operation.kind} {operation.id} · {operation_state(operation)}"
        f" · by {operation.created_by or '-'} · {operation.rate_per_second:g}/s",
        f"comment: {operation.comment or '-'}",
        progress_bar(settled, target),
    ]
    if operation.kind == "redrive":
        lines += [
            f"retried {progress.retried} of {target} · running {progress.running} · "
            f"succeeded {progress.succeeded} · failed again {progress.failed_again}",
            f"pending {progress.pending} · not retried {progress.not_retried} · "
            f"excluded {progress.excluded} · cancelled {progress.cancelled} · "
            f"interrupted {progress.interrupted}",
        ]
    else:
        lines.append(
            f"applied {progress.applied} · not applicable {progress.not_applicable} · "
            f"pending {progress.pending} · cancelled {progress.cancelled}"
        )
    if operation.done:
        lines.append(f"finished {timestamp(operation.finished_at)}")
    if operation.cancelled_by:
        lines.append(f"cancelled by {operation.cancelled_by}: {operation.cancel_reason or '-'}")
    for failure in operation.failures:
        lines.append(
            f"failed again: {failure.count} × {failure.error_type}: "
            f"{shorten(failure.sample_message, 120)}"
        )
    return "\n".join(lines)
