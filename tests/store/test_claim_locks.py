"""Claiming ready tasks never waits on a lock (PostgreSQL, where control planes share the
database): a claim locks a task and bumps its run's sequence, while a transaction that changes
a run locks the run and then its tasks. A claim that waited for the run could deadlock with it;
one that skips a task whose run is locked elsewhere cannot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, select, text, update

from controlplane.dispatch import claims
from controlplane.dispatch.sessions import WorkerSession
from controlplane.store.codec import to_datetime
from controlplane.store.run_batch import RunBatch
from controlplane.store.schema import tasks
from tests.store.stored_runs import T0, orders_definition, register, save_new_run

pytestmark = pytest.mark.postgres

RUN = "run-claimed-while-locked"


@pytest.fixture
def session() -> Iterator[WorkerSession]:
    loop = asyncio.new_event_loop()
    try:
        yield WorkerSession(
            id="session-1",
            namespace="default",
            worker_id="worker-1",
            implements=frozenset({("reserve-step", "")}),
            loop=loop,
            outbound=asyncio.Queue(),
            window=10,
        )
    finally:
        loop.close()


def claim(connection: Connection, session: WorkerSession) -> list[str]:
    # A wait of more than a few seconds is a wait: the claim must not take one at all.
    connection.execute(text("SET LOCAL lock_timeout = '5s'"))
    now = to_datetime(T0 + 60)
    rows = claims.claim_ready_tasks(connection, session, 10, now, to_datetime(T0 + 120))
    return [row["id"] for row in rows]


@pytest.mark.parametrize("database_kind", ["postgresql"], indirect=True)
def test_a_claim_skips_a_task_whose_run_is_locked_and_leaves_the_task_to_that_transaction(
    engine: Engine, session: WorkerSession
) -> None:
    save_new_run(engine, register(engine, orders_definition()), RUN)
    with engine.connect() as connection:
        [task_id] = connection.execute(select(tasks.c.id).where(tasks.c.run_id == RUN)).scalars()

    with engine.connect() as changing, engine.connect() as claiming:
        # Another control plane's transaction holds the run, as a CancelRun does...
        changing.begin()
        RunBatch(changing, T0 + 60, lock_rows=True).lock_runs([RUN])
        claiming.begin()
        assert claim(claiming, session) == []
        # ...and then changes its task, without waiting for the claim to end.
        changing.execute(text("SET LOCAL lock_timeout = '5s'"))
        changing.execute(update(tasks).where(tasks.c.id == task_id).values(timeout_seconds=7))
        changing.commit()
        claiming.commit()

    with engine.begin() as connection:
        assert claim(connection, session) == [task_id]
