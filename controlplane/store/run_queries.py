"""Reading runs for the API: one run with its tasks and history, pages of runs, history."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, or_, select

from controlplane.store.bulk import among
from controlplane.store.codec import load_json
from controlplane.store.schema import history, runs, tasks


@dataclass(frozen=True)
class RunView:
    run: Row[Any]
    # Its tasks: what is running or ready now (with the latest heartbeat details).
    tasks: list[Row[Any]]


def get_run(connection: Connection, namespace: str, run_id: str) -> RunView | None:
    """One run as GetRun shows it: two indexed reads, whatever the length of its history (the
    run's state keeps its steps' finished attempts)."""
    row = connection.execute(
        select(runs).where(runs.c.id == run_id, runs.c.namespace == namespace)
    ).first()
    if row is None:
        return None
    task_rows = list(connection.execute(select(tasks).where(tasks.c.run_id == run_id)))
    return RunView(row, task_rows)


def status_and_output(
    connection: Connection, namespace: str, run_id: str
) -> tuple[str, Any] | None:
    """The run's status and (once completed) output; None if it is not in `namespace`."""
    row = connection.execute(
        select(runs.c.status, runs.c.output).where(
            runs.c.id == run_id, runs.c.namespace == namespace
        )
    ).first()
    return None if row is None else (row.status, load_json(row.output))


def by_request_id(connection: Connection, namespace: str, request_ids: list[str]) -> list[Any]:
    """(id, request_id, workflow_version, status, output) of the runs in `namespace` that
    these request ids started.

    The namespace comes first, as in the unique index (namespace, request_id): without it
    the lookup reads the whole index, a cost growing with every run ever started.
    """
    query = select(
        runs.c.id, runs.c.request_id, runs.c.workflow_version, runs.c.status, runs.c.output
    ).where(runs.c.namespace == namespace, among(connection, runs.c.request_id, request_ids))
    return list(connection.execute(query))


def run_exists(connection: Connection, namespace: str, run_id: str) -> bool:
    query = select(runs.c.id).where(runs.c.id == run_id, runs.c.namespace == namespace)
    return connection.execute(query).first() is not None


def read_history(
    connection: Connection, run_id: str, after_seq: int = 0, limit: int = 0
) -> list[Row[Any]]:
    query = (
        select(history)
        .where(history.c.run_id == run_id, history.c.seq > after_seq)
        .order_by(history.c.seq)
    )
    if limit:
        query = query.limit(limit)
    return list(connection.execute(query))


class BadPageToken(ValueError):
    pass


def encode_page_token(created_at: datetime, run_id: str) -> str:
    raw = json.dumps({"c": created_at.isoformat(), "i": run_id}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_page_token(token: str) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        created_at = datetime.fromisoformat(data["c"])
        run_id = str(data["i"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadPageToken("page_token is not one this server issued") from exc
    if created_at.tzinfo is None:
        raise BadPageToken("page_token is not one this server issued")
    return created_at, run_id


def list_runs(
    connection: Connection,
    namespace: str,
    *,
    workflow_name: str = "",
    workflow_version: str = "",
    statuses: list[str] | None = None,
    page_size: int = 100,
    page_token: str = "",
) -> tuple[list[Row[Any]], str]:
    """A page of runs, newest first, and the token of the next page ("" on the last)."""
    query = select(runs).where(runs.c.namespace == namespace)
    if workflow_name:
        query = query.where(runs.c.workflow_name == workflow_name)
    if workflow_version:
        query = query.where(runs.c.workflow_version == workflow_version)
    if statuses:
        query = query.where(runs.c.status.in_(statuses))
    if page_token:
        created_at, run_id = decode_page_token(page_token)
        query = query.where(
            or_(
                runs.c.created_at < created_at,
                and_(runs.c.created_at == created_at, runs.c.id < run_id),
            )
        )
    query = query.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(page_size + 1)
    rows = list(connection.execute(query))
    if len(rows) <= page_size:
        return rows, ""
    last = rows[page_size - 1]
    return rows[:page_size], encode_page_token(last.created_at, last.id)
