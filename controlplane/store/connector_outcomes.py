"""The outcome records of connector calls that must not be made twice (``connector_outcomes``).

An SMTP server, a Slack webhook or a SQL ``INSERT`` does not dedupe on an idempotency key,
yet Surefoot runs every step at least once (law 3). So before such a call the connector
worker claims the task's idempotency key here (a STARTED row), and after it records the
outcome (COMPLETED). The worker asks over gRPC (``api/connector_outcomes.py``); only the
control plane touches these rows. An operator's retry with ``forget_connector_outcome``
deletes a key's row in the run's own transaction (``run_batch.py``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from controlplane import errors
from controlplane.store.codec import dump_json, load_json
from controlplane.store.schema import connector_outcomes, runs

STARTED = "STARTED"
COMPLETED = "COMPLETED"
# Attempts race only when a key's row appears and disappears between the insert and the
# read; more rounds than this is a bug, not contention.
_CLAIM_ROUNDS = 3


class ClaimContention(Exception):
    """The key's row kept appearing and disappearing under the claim."""


@dataclass(frozen=True)
class Recorded:
    """The row of a key as an attempt finds it."""

    state: str
    attempt: int
    started_at: datetime.datetime
    outcome: Any


def run_namespace(connection: Connection, run_id: str) -> str | None:
    """The namespace of run `run_id`, or None if there is no such run."""
    return connection.execute(select(runs.c.namespace).where(runs.c.id == run_id)).scalar()


def claim(
    engine: Engine, key: str, connector: str, attempt: int, namespace: str
) -> Recorded | None:
    """Claim `key` for `attempt` (None), or return the row an earlier attempt left.

    The primary key decides between attempts that race for the same key.

    Raises:
        ClaimContention: The row kept changing (it was deleted under each read).
        NotOwned: The key's run does not exist in `namespace`; nothing was written.
    """
    for _ in range(_CLAIM_ROUNDS):
        try:
            with engine.begin() as connection:
                owned(connection, key, namespace)
                connection.execute(
                    insert(connector_outcomes).values(
                        idempotency_key=key,
                        connector=connector,
                        state=STARTED,
                        attempt=attempt,
                        started_at=_now(),
                    )
                )
            return None
        except IntegrityError:
            pass  # the primary key says another attempt holds a row: read it
        with engine.connect() as connection:
            recorded = read(connection, key)
        if recorded is not None:
            return recorded
        # Released meanwhile: claim again.
    raise ClaimContention(key)


def complete(engine: Engine, key: str, attempt: int, outcome: Any, namespace: str) -> bool:
    """Record the outcome of `attempt`'s call; False if its STARTED row was gone.

    Raises:
        NotOwned: The key's run does not exist in `namespace`; nothing was written.
    """
    with engine.begin() as connection:
        owned(connection, key, namespace)
        changed = connection.execute(
            update(connector_outcomes)
            .where(
                connector_outcomes.c.idempotency_key == key,
                connector_outcomes.c.state == STARTED,
                connector_outcomes.c.attempt == attempt,
            )
            .values(state=COMPLETED, outcome=dump_json(outcome), completed_at=_now())
        ).rowcount
    return bool(changed)


def release(engine: Engine, key: str, attempt: int, namespace: str) -> bool:
    """Delete `attempt`'s STARTED row (its call certainly had no effect); False if none.

    Raises:
        NotOwned: The key's run does not exist in `namespace`; nothing was written.
    """
    with engine.begin() as connection:
        owned(connection, key, namespace)
        deleted = connection.execute(
            delete(connector_outcomes).where(
                connector_outcomes.c.idempotency_key == key,
                connector_outcomes.c.state == STARTED,
                connector_outcomes.c.attempt == attempt,
            )
        ).rowcount
    return bool(deleted)


def read(connection: Connection, key: str) -> Recorded | None:
    """The row of `key`, or None."""
    row = connection.execute(
        select(
            connector_outcomes.c.state,
            connector_outcomes.c.attempt,
            connector_outcomes.c.started_at,
            connector_outcomes.c.outcome,
        ).where(connector_outcomes.c.idempotency_key == key)
    ).first()
    if row is None:
        return None
    outcome = load_json(row.outcome) if row.outcome is not None else None
    return Recorded(row.state, row.attempt, row.started_at, outcome)


def forget(connection: Connection, key: str) -> bool:
    """Delete the row of `key` whatever its state, so that a retry calls again.

    Returns:
        Whether there was a row.
    """
    deleted = connection.execute(
        delete(connector_outcomes).where(connector_outcomes.c.idempotency_key == key)
    ).rowcount
    return bool(deleted)


class NotOwned(errors.NotFound):
    """The run a key names does not exist in the caller's namespace."""

    def __init__(self, key: str) -> None:
        super().__init__(f"run {run_of(key)} not found in this namespace")


def run_of(key: str) -> str:
    """The run id a step's idempotency key starts with (``<run id>:<node id>...``)."""
    return key.partition(":")[0]


def owned(connection: Connection, key: str, namespace: str) -> None:
    """Raise :class:`NotOwned` unless the key's run exists in `namespace`.

    A run of another namespace is indistinguishable from a missing one, so that nothing
    crosses namespaces, not even the fact that a run exists.
    """
    if run_namespace(connection, run_of(key)) != namespace:
        raise NotOwned(key)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
