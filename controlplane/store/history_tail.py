"""Reading the end of a run's history for `WatchRun`: the events after a seq, with the status
they leave the run in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, select

from controlplane.store.schema import history, runs


@dataclass(frozen=True)
class HistoryTail:
    # The run's status after its event `last_seq` (the last one committed).
    status: str
    last_seq: int
    # The events after the seq asked for, in seq order, none past `last_seq`: history rows,
    # or objects with the same attributes.
    events: Sequence[Any]


def read_tail(
    connection: Connection, namespace: str, run_id: str, after_seq: int, limit: int
) -> HistoryTail | None:
    """At most `limit` events of `run_id` after `after_seq`; None if the run is not in
    `namespace`.

    The run row is read first and the events are bounded by its `last_seq`: an event
    committed between the two statements is left for the next read, so the status always
    belongs to the run's event `last_seq`, even where each statement sees its own snapshot
    (READ COMMITTED; SQLite outside a transaction).
    """
    run = connection.execute(
        select(runs.c.status, runs.c.last_seq).where(
            runs.c.id == run_id, runs.c.namespace == namespace
        )
    ).first()
    if run is None:
        return None
    events: list[Row[Any]] = []
    if after_seq < run.last_seq:
        query = (
            select(history)
            .where(
                history.c.run_id == run_id,
                history.c.seq > after_seq,
                history.c.seq <= run.last_seq,
            )
            .order_by(history.c.seq)
            .limit(limit)
        )
        events = list(connection.execute(query))
    return HistoryTail(run.status, run.last_seq, events)
