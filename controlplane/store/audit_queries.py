"""Reading for the audit: runs' hash chains to verify, and who acted on a run so far."""

from __future__ import annotations

import base64
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, Row, select

from controlplane.audit.verify import Verdict, verify_chain
from controlplane.store.schema import history, runs

# Runs whose history is read with one statement while verifying.
CHUNK = 100

# History events that name a principal separation of duties keeps from deciding.
STARTED = "RUN_STARTED"
DECIDED = "APPROVAL_DECIDED"


def existing_runs(connection: Connection, namespace: str, run_ids: list[str]) -> set[str]:
    query = select(runs.c.id).where(runs.c.namespace == namespace, runs.c.id.in_(run_ids))
    return set(connection.execute(query).scalars())


def run_page(
    connection: Connection, namespace: str, page_size: int, page_token: str
) -> tuple[list[str], str]:
    """A page of the namespace's run ids in id order, and the token of the next page."""
    query = select(runs.c.id).where(runs.c.namespace == namespace)
    if page_token:
        query = query.where(runs.c.id > decode_token(page_token))
    ids = list(connection.execute(query.order_by(runs.c.id).limit(page_size + 1)).scalars())
    if len(ids) <= page_size:
        return ids, ""
    return ids[:page_size], encode_token(ids[page_size - 1])


def encode_token(run_id: str) -> str:
    return base64.urlsafe_b64encode(run_id.encode()).decode()


def decode_token(token: str) -> str:
    """ValueError for a token this module did not make."""
    try:
        run_id = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeError):
        run_id = ""
    if not run_id or len(run_id) > runs.c.id.type.length:  # type: ignore[attr-defined]
        raise ValueError("is not a page token of this listing")
    return run_id


def verify_runs(connection: Connection, namespace: str, run_ids: list[str]) -> list[Verdict]:
    """The verdict on each run of `run_ids` that exists in `namespace`, in id order.

    One read per chunk of runs; each run's history is held only while it is checked.
    """
    verdicts: list[Verdict] = []
    ordered = sorted(set(run_ids))
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        heads = {
            row.id: row
            for row in connection.execute(
                select(runs.c.id, runs.c.last_seq, runs.c.last_hash).where(
                    runs.c.namespace == namespace, runs.c.id.in_(chunk)
                )
            )
        }
        events: dict[str, list[Row[Any]]] = {run_id: [] for run_id in heads}
        query = (
            select(history)
            .where(history.c.run_id.in_(list(heads)))
            .order_by(history.c.run_id, history.c.seq)
        )
        for run_id, rows in groupby(connection.execute(query), key=lambda r: r.run_id):
            events[run_id] = list(rows)
        for run_id in sorted(heads):
            head = heads[run_id]
            verdicts.append(verify_chain(run_id, events[run_id], head.last_seq, head.last_hash))
    return verdicts


def acting_principals(connection: Connection, run_id: str) -> list[tuple[str, str]]:
    """(event type, principal) of who started the run and who decided its approvals."""
    query = (
        select(history.c.type, history.c.principal)
        .where(history.c.run_id == run_id, history.c.type.in_([STARTED, DECIDED]))
        .order_by(history.c.seq)
    )
    return [(row.type, row.principal) for row in connection.execute(query)]
