"""Reading runs for the API: one run with its tasks and history, pages of runs, history."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Row, Select, and_, func, or_, select

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


def encode_page_token(created_at: datetime, row_id: str, *, list_name: str = "") -> str:
    """The position after a row in a list ordered by (time, id): runs, dead letters,
    approvals, operations, and (named, `list_name`) credentials."""
    data = (
        {"l": list_name, "c": created_at.isoformat(), "i": row_id}
        if list_name
        else {
            "c": created_at.isoformat(),
            "i": row_id,
        }
    )
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def decode_page_token(token: str, *, list_name: str = "") -> tuple[datetime, str]:
    """(time, id) of the row a token made by `encode_page_token` follows.

    Raises:
        BadPageToken: for any other token, one of another named list included.
    """
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        listed, created_at, row_id = data.get("l", ""), datetime.fromisoformat(data["c"]), data["i"]
        # In UTC here: an offset that moves a time out of datetime's range fails now, not
        # as the statement's parameter.
        if created_at.tzinfo is not None:
            created_at = created_at.astimezone(UTC)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise BadPageToken("page_token is not one this server issued") from exc
    # NUL is never in a token made here (ids are text, which refuses it): PostgreSQL would
    # refuse the statement rather than find no row.
    if listed != list_name or created_at.tzinfo is None or not isinstance(row_id, str):
        raise BadPageToken("page_token is not one this server issued")
    if not row_id or "\x00" in row_id:
        raise BadPageToken("page_token is not one this server issued")
    return created_at, row_id


# What a list shows of a run: every column but its state (the steps, a projection that can
# be large), which only GetRun reads.
LISTED = [c for c in runs.c if c.name != "state"]
# What a live runs table shows: no input or output either.
SUMMARY = [c for c in LISTED if c.name not in ("input", "output")]
# A page of a few statuses matching at most this many runs is sorted from all of them
# (page_query): their entries of (namespace, status) and their rows, about 5 ms a thousand
# on a 2-core machine; above it, matches are many and the creation index finds a page soon.
FEW_MATCHING = 10_000


@dataclass(frozen=True)
class RunSelection:
    """Which runs of a namespace a list or a watch means; empty fields match everything.

    `created_after` is inclusive, `created_before` exclusive; `id_prefix` is read as the
    range [prefix, prefix with its last character incremented), which the primary key's
    index answers (the id column sorts bytewise on PostgreSQL, migration 0016).
    """

    namespace: str
    workflow_name: str = ""
    workflow_version: str = ""
    statuses: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    id_prefix: str = ""

    def conditions(self) -> list[ColumnElement[bool]]:
        found = [runs.c.namespace == self.namespace]
        if self.workflow_name:
            found.append(runs.c.workflow_name == self.workflow_name)
        if self.workflow_version:
            found.append(runs.c.workflow_version == self.workflow_version)
        if self.statuses:
            found.append(runs.c.status.in_(self.statuses))
        if self.created_after is not None:
            found.append(runs.c.created_at >= self.created_after)
        if self.created_before is not None:
            found.append(runs.c.created_at < self.created_before)
        if self.id_prefix:
            found.append(runs.c.id >= self.id_prefix)
            found.append(runs.c.id < prefix_end(self.id_prefix))
        return found

    def holds(self, run: Any) -> bool:
        """Whether `run` (anything with a run row's attributes) is selected, status apart:
        the fields that never change once a run exists."""
        return (
            run.namespace == self.namespace
            and (not self.workflow_name or run.workflow_name == self.workflow_name)
            and (not self.workflow_version or run.workflow_version == self.workflow_version)
            and (self.created_after is None or run.created_at >= self.created_after)
            and (self.created_before is None or run.created_at < self.created_before)
            and run.id.startswith(self.id_prefix)
        )

    def shows(self, status: str | None) -> bool:
        """Whether a run of this selection's fixed fields is selected in `status` (None: a
        run that did not exist)."""
        return status is not None and (not self.statuses or status in self.statuses)


def prefix_end(prefix: str) -> str:
    """The first string after every string that starts with `prefix` (bytewise)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def list_runs(
    connection: Connection,
    namespace: str,
    *,
    workflow_name: str = "",
    workflow_version: str = "",
    statuses: Sequence[str] = (),
    page_size: int = 100,
    page_token: str = "",
) -> tuple[list[Row[Any]], str]:
    """A page of runs, newest first, and the token of the next page ("" on the last)."""
    selection = RunSelection(namespace, workflow_name, workflow_version, tuple(statuses))
    return page_of_runs(connection, selection, page_size, page_token)


def page_of_runs(
    connection: Connection,
    selection: RunSelection,
    page_size: int = 100,
    page_token: str = "",
    columns: Sequence[Column[Any]] = LISTED,
    matching: int | None = None,
) -> tuple[list[Row[Any]], str]:
    """A page of the selected runs, newest first, and the token of the next page ("" on
    the last); `matching`: how many runs the selection holds, when known (see page_query)."""
    query = page_query(selection, page_size, page_token, columns, matching)
    rows = list(connection.execute(query))
    if len(rows) <= page_size:
        return rows, ""
    last = rows[page_size - 1]
    return rows[:page_size], encode_page_token(last.created_at, last.id)


def page_query(
    selection: RunSelection,
    page_size: int,
    page_token: str = "",
    columns: Sequence[Column[Any]] = LISTED,
    matching: int | None = None,
) -> Select[Any]:
    """The page's statement (one row more than the page, to know whether another follows).

    Newest first is the order of the index (namespace, created_at, id), read backwards from
    the token's position: a page costs its own rows, whatever its place in the list, and
    the rows it skips. When a few statuses are asked for, those skipped rows are every run
    of another status newer than the page: 96,000 completed runs above 4,000 that need
    attention, say, which the planner (counting on matches spread evenly) does not expect.
    So when the caller knows the selection holds at most `FEW_MATCHING` runs (`matching`,
    from a count on the (namespace, status) index), they are read by that index and the
    page sorted from them: a cost bounded by the matches, not by the runs around them.

    Raises:
        BadPageToken: a token this server did not issue.
    """
    query = select(*columns).where(*selection.conditions())
    if page_token:
        created_at, run_id = decode_page_token(page_token)
        query = query.where(
            or_(
                runs.c.created_at < created_at,
                and_(runs.c.created_at == created_at, runs.c.id < run_id),
            )
        )
    if selection.statuses and matching is not None and matching <= FEW_MATCHING:
        return _page_of_few(query, columns, page_size)
    return query.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(page_size + 1)


def _page_of_few(
    matching: Select[Any], columns: Sequence[Column[Any]], page_size: int
) -> Select[Any]:
    """The page sorted from the keys of every matching run, then its own rows read by id:
    only (created_at, id) of the matches is held and sorted, not their columns."""
    keys = matching.with_only_columns(runs.c.id, runs.c.created_at)
    # MATERIALIZED (PostgreSQL 12, SQLite 3.35): otherwise the planner folds the CTE into
    # the query around it and is back at the backward walk of the creation index.
    matched = keys.cte("matched").prefix_with("MATERIALIZED")
    page = (
        select(matched.c.id)
        .order_by(matched.c.created_at.desc(), matched.c.id.desc())
        .limit(page_size + 1)
        .subquery("page")
    )
    return (
        select(*columns)
        .join_from(runs, page, runs.c.id == page.c.id)
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
    )


def count_runs(connection: Connection, selection: RunSelection) -> int:
    """How many runs the selection holds."""
    return int(connection.execute(count_query(selection)).scalar_one())


def count_query(selection: RunSelection) -> Select[Any]:
    """An index-only count on the namespace's indexes where the filters allow it."""
    return select(func.count()).select_from(runs).where(*selection.conditions())


def counts_by_status(connection: Connection, selection: RunSelection) -> dict[str, int]:
    """How many runs each status holds among those the selection's other fields select
    (statuses with none are absent)."""
    return {status: int(count) for status, count in connection.execute(by_status_query(selection))}


def by_status_query(selection: RunSelection) -> Select[Any]:
    """Without other filters than the namespace, an index-only scan of (namespace, status):
    every run of the namespace read once, in the index, with no heap row once vacuumed."""
    unfiltered = replace(selection, statuses=())
    return (
        select(runs.c.status, func.count()).where(*unfiltered.conditions()).group_by(runs.c.status)
    )


def summaries_by_id(connection: Connection, run_ids: Sequence[str]) -> list[Row[Any]]:
    """The summary columns of these runs (those that exist), in no particular order."""
    found: list[Row[Any]] = []
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start : start + 500]
        found.extend(
            connection.execute(select(*SUMMARY).where(among(connection, runs.c.id, chunk)))
        )
    return found


def changed_since(
    connection: Connection, namespace: str, since: datetime, after_id: str = "", limit: int = 1000
) -> list[Row[Any]]:
    """Summaries of the runs of `namespace` updated at or after `since` (those at `since`
    after `after_id`), oldest change first."""
    return list(connection.execute(changed_since_query(namespace, since, after_id, limit)))


def changed_since_query(
    namespace: str, since: datetime, after_id: str = "", limit: int = 1000
) -> Select[Any]:
    """The index (namespace, updated_at, id) answers it: a re-read costs the runs that
    changed, never the runs that wait."""
    return (
        select(*SUMMARY)
        .where(
            runs.c.namespace == namespace,
            or_(
                runs.c.updated_at > since,
                and_(runs.c.updated_at == since, runs.c.id > after_id),
            ),
        )
        .order_by(runs.c.updated_at, runs.c.id)
        .limit(limit)
    )
