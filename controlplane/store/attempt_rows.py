"""The `attempts` projection: a step's finished attempts, from the history events of them.

GetRun shows every attempt of every step; reading them from this table instead of
rebuilding them from the whole history keeps that read small for a long-lived run.
"""

from __future__ import annotations

from typing import Any

from controlplane.engine.events import NewHistoryEvent
from controlplane.store.codec import dump_json, to_datetime

OUTCOMES = {
    "ATTEMPT_COMPLETED": "COMPLETED",
    "ATTEMPT_FAILED": "FAILED",
    "ATTEMPT_LOST": "LOST",
}


class AttemptRows:
    """The attempts rows of one batch, by (run id, node id, attempt).

    The engine records an attempt's start together with its outcome, once (a second result
    for it is RESULT_IGNORED), so each row is inserted once, whole.
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, int], dict[str, Any]] = {}

    def project(self, run_id: str, event: NewHistoryEvent) -> None:
        if event.type != "ATTEMPT_STARTED" and event.type not in OUTCOMES:
            return
        key = (run_id, event.node_id, event.attempt)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = {
                "run_id": run_id,
                "node_id": event.node_id,
                "attempt": event.attempt,
                "worker_id": "",
                "started_at": None,
                "ended_at": None,
                "outcome": "RUNNING",
                "error": None,
            }
        if event.type == "ATTEMPT_STARTED":
            row["worker_id"] = str(event.data.get("worker_id", ""))
            row["started_at"] = to_datetime(event.time)
            return
        if not row["worker_id"]:
            row["worker_id"] = event.principal
        row["outcome"] = OUTCOMES[event.type]
        row["ended_at"] = to_datetime(event.time)
        error = event.data.get("error")
        if event.type == "ATTEMPT_LOST":
            error = {"type": "AttemptLost", "message": event.data.get("reason")}
        row["error"] = dump_json(error) if error else None

    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows.values())
