"""Progress details a worker reports with its heartbeats, kept with the attempt.

Only the latest details of an attempt are kept, on its task row: they live as long as the
attempt is in flight (the row goes when its outcome is recorded), and history keeps none of
them, so a step that heartbeats every second does not grow its run's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, update

from controlplane.store.schema import tasks


@dataclass(frozen=True)
class HeartbeatDetails:
    """The worker's payload as sent: `encoding` (e.g. "json/plain") tells how to read `data`."""

    encoding: str
    data: bytes


def record_details(connection: Connection, details: Mapping[str, HeartbeatDetails]) -> None:
    """Keep the latest details of each task (by id) that is still leased."""
    if not details:
        return
    connection.execute(
        update(tasks)
        .where(tasks.c.id == bindparam("b_id"), tasks.c.status == "leased")
        .values(heartbeat_encoding=bindparam("b_encoding"), heartbeat_details=bindparam("b_data")),
        [
            {"b_id": task_id, "b_encoding": d.encoding, "b_data": d.data}
            for task_id, d in sorted(details.items())
        ],
    )


def latest_details(connection: Connection, run_id: str) -> dict[tuple[str, int], HeartbeatDetails]:
    """The latest heartbeat details of each open attempt of a run, by (node id, attempt)."""
    query = select(
        tasks.c.node_id, tasks.c.attempt, tasks.c.heartbeat_encoding, tasks.c.heartbeat_details
    ).where(tasks.c.run_id == run_id, tasks.c.heartbeat_details.is_not(None))
    return {
        (row.node_id, row.attempt): HeartbeatDetails(
            row.heartbeat_encoding or "", bytes(row.heartbeat_details)
        )
        for row in connection.execute(query)
    }
