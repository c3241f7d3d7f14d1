"""Workers, queues and definitions as the console shows them (pure functions, unit-tested)."""

from __future__ import annotations

from surefoot.v1 import worker_admin_service_pb2 as wpb
from surefoot.v1 import workflow_service_pb2 as ws

from console.render import Row, shorten
from console.render_incident import short_time

WORKER_COLUMNS = ("WORKER", "STEP TYPES", "CREDIT", "IN FLIGHT", "STATE", "LAST HEARD", "SINCE")
QUEUE_COLUMNS = ("STEP TYPE", "VERSION", "QUEUED", "OLDEST", "WORKERS", "CONNECTED VERSIONS")
DEFINITION_COLUMNS = ("", "WORKFLOW", "VERSION", "SEQ", "IN FLIGHT", "STATE", "REGISTERED")

NO_WORKER = "NONE: stuck"


def step_types_text(step_types: list[wpb.WorkerStepType]) -> str:
    """`charge-card@1,2 refund@1`: each step type once, with its versions."""
    versions: dict[str, list[str]] = {}
    for declared in step_types:
        versions.setdefault(declared.name, []).append(declared.version)
    return " ".join(f"{name}@{','.join(v)}" for name, v in sorted(versions.items()))


def worker_state(worker: wpb.ConnectedWorker) -> str:
    if worker.stale:
        return "stale"
    return "draining" if worker.draining else "connected"


def worker_row(worker: wpb.ConnectedWorker) -> Row:
    return (
        worker.worker_id,
        shorten(step_types_text(list(worker.step_types)), 50),
        str(worker.credit),
        str(worker.in_flight),
        worker_state(worker),
        short_time(worker.last_heard),
        short_time(worker.connected_since),
    )


def queue_key(queued: wpb.QueuedStepType) -> str:
    return f"{queued.name}@{queued.version}"


def queue_row(queued: wpb.QueuedStepType) -> Row:
    return (
        queued.name,
        queued.version or "any",
        str(queued.queued),
        short_time(queued.oldest_queued_since),
        str(queued.capable_workers) if queued.capable_workers else NO_WORKER,
        ", ".join(queued.connected_versions) or "-",
    )


def definition_key(info: ws.DefinitionInfo) -> str:
    return f"{info.name}@{info.version}"


def definition_row(info: ws.DefinitionInfo, marked: bool = False) -> Row:
    state = "active"
    if info.deprecated:
        state = "deprecated" + (f": {info.deprecation_reason}" if info.deprecation_reason else "")
    return (
        "*" if marked else "",
        info.name,
        info.version,
        str(info.sequence),
        str(info.runs_in_flight),
        shorten(state, 40),
        short_time(info.registered_at),
    )
