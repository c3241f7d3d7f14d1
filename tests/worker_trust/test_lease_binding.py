"""Results and heartbeats are bound to the stream that holds the lease (committer level).

A committer thread runs on the test's database and fake sessions stand in for worker
streams, so that each case shows exactly what was written: a refused result locks no run,
writes no history, changes no lease and is credited to nobody.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Engine, func, select
from surefoot.v1 import worker_service_pb2 as wpb

from controlplane.dispatch import operations as ops
from controlplane.dispatch.committer import Committer
from controlplane.dispatch.sessions import WorkerSession
from controlplane.store.definitions import DefinitionCache
from controlplane.store.schema import history, tasks
from controlplane.store.step_types import StepCatalogCache
from tests.store.stored_runs import NAMESPACE, orders_definition, register

WAIT = 10.0


def run_with_committer(engine: Engine, body: Callable[[Committer], Awaitable[None]]) -> None:
    committer = Committer(
        engine,
        DefinitionCache(engine),
        StepCatalogCache(engine),
        lease_seconds=60,
        poll_interval=0.05,
        rng=random.Random(3),
    )
    committer.start()
    try:
        asyncio.run(asyncio.wait_for(body(committer), 4 * WAIT))
    finally:
        committer.stop()


def session(worker_id: str, namespace: str = NAMESPACE) -> WorkerSession:
    return WorkerSession(
        id=secrets.token_hex(16),
        namespace=namespace,
        worker_id=worker_id,
        implements=frozenset({("reserve-step", ""), ("charge-step", "")}),
        loop=asyncio.get_running_loop(),
        outbound=asyncio.Queue(),
    )


async def connect(
    committer: Committer, worker_id: str, credit: int = 0, resume: tuple[str, ...] = ()
) -> tuple[WorkerSession, int]:
    opened = session(worker_id)
    moved = await committer.submit(ops.OpenSession(opened, resume))
    if credit:
        await committer.submit(ops.GrantCredit(opened.id, credit))
    return opened, moved


async def next_of(stream: WorkerSession, kind: str) -> wpb.ServerMessage:
    while True:
        message = await asyncio.wait_for(stream.outbound.get(), WAIT)
        assert message is not None
        if message.WhichOneof("message") == kind:
            return message


async def start(committer: Committer) -> str:
    started = await committer.submit(
        ops.StartRun(NAMESPACE, "orders", "", {"amount": 5, "note": "n"}, "", "alice")
    )
    return str(started.run_id)


def written(engine: Engine) -> tuple[int, list[tuple[Any, ...]]]:
    """History rows, and every task row's lease: what a refused result must leave alone."""
    with engine.connect() as connection:
        events = connection.execute(select(func.count()).select_from(history)).scalar_one()
        leases = connection.execute(
            select(
                tasks.c.id, tasks.c.status, tasks.c.session_id, tasks.c.lease_expires_at
            ).order_by(tasks.c.id)
        ).all()
    return int(events), [tuple(row) for row in leases]


def completed_by(engine: Engine, run_id: str) -> list[tuple[str, str]]:
    """(node, who history credits) of each ATTEMPT_COMPLETED event of the run."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(history.c.node_id, history.c.principal)
            .where(history.c.run_id == run_id, history.c.type == "ATTEMPT_COMPLETED")
            .order_by(history.c.seq)
        ).all()
    return [(row.node_id, row.principal) for row in rows]


async def settle(committer: Committer) -> None:
    """Wait until every operation posted before has been through a commit."""
    await committer.submit(ops.LookForTasks())


def test_a_result_from_a_stream_that_does_not_hold_the_lease_writes_nothing(
    engine: Engine,
) -> None:
    register(engine, orders_definition())

    async def body(committer: Committer) -> None:
        holder, _ = await connect(committer, "legitimate", credit=1)
        intruder, _ = await connect(committer, "intruder")
        run_id = await start(committer)
        task = (await next_of(holder, "tasks")).tasks.tasks[0]
        assert task.task_id == f"{run_id}:reserve:1"
        before = written(engine)

        # The task id is public knowledge (run id, node, attempt): it gives no power.
        committer.post(
            ops.RecordResult(intruder.id, "intruder", task.task_id, "complete", output={"x": 1})
        )
        committer.post(ops.RecordResult(intruder.id, "intruder", task.task_id, "fail"))
        committer.post(ops.RecordResult(intruder.id, "intruder", task.task_id, "hand_back"))
        committer.post(ops.ExtendLeases(intruder.id, [task.task_id]))
        await settle(committer)

        assert written(engine) == before
        refused = [await next_of(intruder, "refused") for _ in range(4)]
        assert {m.refused.task_id for m in refused} == {task.task_id}
        assert intruder.refused == 4 and holder.refused == 0
        assert task.task_id in holder.outstanding

        # The legitimate worker's result is the one recorded, credited to it.
        committer.post(
            ops.RecordResult(holder.id, "legitimate", task.task_id, "complete", output={"r": 1})
        )
        assert (await next_of(holder, "ack")).ack.task_ids == [task.task_id]
        assert completed_by(engine, run_id) == [("reserve", "legitimate")]
        # Recorded once: a second report of it, even from its holder, is refused.
        committer.post(
            ops.RecordResult(holder.id, "legitimate", task.task_id, "complete", output={})
        )
        assert (await next_of(holder, "refused")).refused.task_id == task.task_id
        assert completed_by(engine, run_id) == [("reserve", "legitimate")]
        await committer.submit(ops.CloseSession(holder.id, "test over"))
        await committer.submit(ops.CloseSession(intruder.id, "test over"))

    run_with_committer(engine, body)


def test_a_result_for_a_task_never_leased_writes_nothing(engine: Engine) -> None:
    register(engine, orders_definition())

    async def body(committer: Committer) -> None:
        run_id = await start(committer)  # reserve:1 is ready, leased to nobody
        stream, _ = await connect(committer, "guesser")
        before = written(engine)
        for task_id in (f"{run_id}:reserve:1", f"{run_id}:charge:1", "no-run:reserve:1"):
            committer.post(ops.RecordResult(stream.id, "guesser", task_id, "complete", output={}))
        await settle(committer)
        assert written(engine) == before
        assert stream.refused == 3
        await committer.submit(ops.CloseSession(stream.id, "test over"))

    run_with_committer(engine, body)


def test_a_reconnecting_worker_takes_its_leases_over_by_naming_its_earlier_session(
    engine: Engine,
) -> None:
    register(engine, orders_definition())

    async def body(committer: Committer) -> None:
        first, _ = await connect(committer, "worker-a", credit=1)
        run_id = await start(committer)
        task = (await next_of(first, "tasks")).tasks.tasks[0]
        # The control plane stops gracefully: the stream ends, its lease is kept.
        await committer.submit(ops.CloseSession(first.id, "stopping", release_leases=False))

        # A stream that does not name the session gets nothing; nor does one of another
        # namespace that names it.
        stranger, moved = await connect(committer, "worker-b")
        assert moved == 0
        elsewhere = session("worker-c", namespace="other")
        assert await committer.submit(ops.OpenSession(elsewhere, (first.id,))) == 0
        before = written(engine)
        committer.post(ops.RecordResult(stranger.id, "worker-b", task.task_id, "complete"))
        committer.post(ops.RecordResult(elsewhere.id, "worker-c", task.task_id, "complete"))
        await settle(committer)
        assert written(engine) == before

        # The worker reconnects naming its earlier session: the lease is this stream's now.
        resumed, moved = await connect(committer, "worker-a", resume=(first.id, "unknown-id"))
        assert moved == 1
        _, leases = written(engine)
        assert [(t, s) for t, status, s, _ in leases if status == "leased"] == [
            (task.task_id, resumed.id)
        ]
        committer.post(ops.ExtendLeases(resumed.id, [task.task_id]))
        committer.post(
            ops.RecordResult(resumed.id, "worker-a", task.task_id, "complete", output={"r": 1})
        )
        assert (await next_of(resumed, "ack")).ack.task_ids == [task.task_id]
        assert resumed.refused == 0
        assert completed_by(engine, run_id) == [("reserve", "worker-a")]
        for opened in (stranger, elsewhere, resumed):
            await committer.submit(ops.CloseSession(opened.id, "test over"))

    run_with_committer(engine, body)
