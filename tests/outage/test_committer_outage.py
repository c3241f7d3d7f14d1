"""The committer while its database is away, in process, on a private cluster stopped and
started again: callers answered Unavailable, worker reports kept and recorded on return."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, Table, func, select

from controlplane import errors
from controlplane.dispatch import operations as ops
from controlplane.dispatch.committer import Committer
from controlplane.dispatch.sessions import WorkerSession
from controlplane.store.database import open_engine
from controlplane.store.migrate import upgrade_engine
from controlplane.store.schema import history, runs
from tests.store.stored_runs import NAMESPACE, orders_definition, register
from tests.store.test_committer_operations import (
    WAIT,
    connect,
    disconnect,
    next_task,
    running_committer,
    start,
)
from tests.support.private_postgres import PrivatePostgres


@pytest.fixture
def engine(cluster: PrivatePostgres) -> Iterator[Engine]:
    opened = open_engine(cluster.url, pool_size=2)
    try:
        upgrade_engine(opened)
        yield opened
    finally:
        opened.dispose()


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def history_types(engine: Engine, run_id: str) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(history.c.type).where(history.c.run_id == run_id).order_by(history.c.seq)
        )
        return [str(row.type) for row in rows]


async def acked(session: WorkerSession, task_id: str) -> None:
    while True:
        message = await asyncio.wait_for(session.outbound.get(), WAIT)
        assert message is not None
        if message.WhichOneof("message") == "ack" and task_id in message.ack.task_ids:
            return


@pytest.mark.postgres
def test_a_database_away_fails_callers_and_keeps_worker_reports(
    cluster: PrivatePostgres, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    register(engine, orders_definition())

    async def body(committer: Committer) -> str:
        session = await connect(committer, ["reserve-step"])
        run_id = await start(committer, "orders", {"amount": 5, "note": "n"})
        task = await next_task(session)
        runs_before = count(engine, runs)

        await asyncio.to_thread(cluster.stop, "fast")
        with pytest.raises(errors.Unavailable):
            await committer.submit(ops.StartRun(NAMESPACE, "orders", "", {}, "r-1", "alice"))
        ghost = WorkerSession(
            id=uuid.uuid4().hex,
            namespace=NAMESPACE,
            worker_id="worker-2",
            implements=frozenset({("reserve-step", "")}),
            loop=asyncio.get_running_loop(),
            outbound=asyncio.Queue(),
        )
        with pytest.raises(errors.Unavailable):
            await committer.submit(ops.OpenSession(ghost))
        # Its stream ends: the session it opened is gone too, never handed a task.
        assert ghost.id not in committer.sessions.by_id
        # The worker reports its result during the outage: nobody waits on it, it is kept.
        committer.post(ops.ExtendLeases(session.id, [task.task_id]))
        committer.post(
            ops.RecordResult(session.id, "worker-1", task.task_id, "complete", output={"r": 1})
        )
        await asyncio.to_thread(cluster.start)

        await acked(session, task.task_id)
        assert count(engine, runs) == runs_before  # the refused start wrote nothing
        await disconnect(committer, session)
        return run_id

    with caplog.at_level(logging.INFO), running_committer(engine) as committer:
        run_id = asyncio.run(asyncio.wait_for(body(committer), 6 * WAIT))

    types = history_types(engine, run_id)
    assert "ATTEMPT_COMPLETED" in types and "ATTEMPT_LOST" not in types, types
    said = [r.getMessage() for r in caplog.records if r.name == "surefoot.database"]
    # One line per change of state. A server shutting down may still serve a statement on a
    # connection it has not closed yet, so the state can change more than twice; the lines
    # then alternate, starting lost and ending back, and stay few (the bound is 20).
    assert 2 <= len(said) < 20 and len(said) % 2 == 0, said
    for lost, back in zip(said[::2], said[1::2], strict=True):
        assert lost.startswith("database unreachable since"), said
        assert back.startswith("database back after"), said
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a lost database"
