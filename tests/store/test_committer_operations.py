"""The committer's operations against a real database: what they answer and what they keep.

A committer thread runs on the test's database; operations are submitted the way the API
submits them and a fake worker session stands in for a connected worker's stream.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, select
from surefoot.v1 import definition_pb2
from surefoot.v1 import worker_service_pb2 as wpb

from controlplane import errors
from controlplane.dispatch import operations as ops
from controlplane.dispatch.committer import Committer
from controlplane.dispatch.sessions import WorkerSession
from controlplane.engine import machine
from controlplane.engine.events import EventReceived, StepSkipRequested
from controlplane.store import heartbeats
from controlplane.store.definitions import DefinitionCache
from controlplane.store.heartbeats import HeartbeatDetails
from controlplane.store.run_queries import get_run
from controlplane.store.schema import events
from controlplane.store.step_types import StepCatalogCache
from tests.store.stored_runs import NAMESPACE, load_run, orders_definition, register

T = TypeVar("T")
WAIT = 10.0  # seconds a committed batch may take to reach the fake worker, at most


@contextmanager
def running_committer(engine: Engine) -> Iterator[Committer]:
    committer = Committer(
        engine,
        DefinitionCache(engine),
        StepCatalogCache(engine),
        lease_seconds=60,
        poll_interval=0.05,
        rng=random.Random(7),
    )
    committer.start()
    try:
        yield committer
    finally:
        committer.stop()


def with_committer(engine: Engine, body: Callable[[Committer], Awaitable[T]]) -> T:
    with running_committer(engine) as committer:
        return asyncio.run(asyncio.wait_for(body(committer), 4 * WAIT))


async def start(committer: Committer, workflow: str, input: Any = None) -> str:
    started = await committer.submit(ops.StartRun(NAMESPACE, workflow, "", input, "", "alice"))
    assert isinstance(started, ops.StartedRun) and started.created
    return started.run_id


async def connect(committer: Committer, step_types: list[str]) -> WorkerSession:
    session = WorkerSession(
        id=uuid.uuid4().hex,
        namespace=NAMESPACE,
        worker_id="worker-1",
        implements=frozenset((name, "") for name in step_types),
        loop=asyncio.get_running_loop(),
        outbound=asyncio.Queue(),
    )
    await committer.submit(ops.OpenSession(session))
    await committer.submit(ops.GrantCredit(session.id, 10))
    return session


async def next_task(session: WorkerSession) -> wpb.Task:
    while True:
        message = await asyncio.wait_for(session.outbound.get(), WAIT)
        assert message is not None
        if message.WhichOneof("message") == "tasks":
            (task,) = message.tasks.tasks
            return task


async def disconnect(committer: Committer, session: WorkerSession) -> None:
    """Before the test's event loop closes: the committer must not message it afterwards."""
    await committer.submit(ops.CloseSession(session.id, "test over"))


def reread(engine: Engine, run_id: str) -> Any:
    with engine.connect() as connection:
        return get_run(connection, NAMESPACE, run_id)


@contextmanager
def events_received() -> Iterator[dict[str, list[str]]]:
    """Who each EventReceived handed to the engine names as its sender, by run id."""
    senders: dict[str, list[str]] = {}
    original = machine.apply

    def spy(run: Any, event: Any, *args: Any) -> Any:
        if isinstance(event, EventReceived):
            senders.setdefault(run.id, []).append(event.principal)
        return original(run, event, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(machine, "apply", spy)
        yield senders


def await_payment() -> definition_pb2.WorkflowDefinition:
    return definition_pb2.WorkflowDefinition(
        name="await-payment",
        version="1",
        nodes=[
            definition_pb2.Node(
                id="payment",
                wait_event=definition_pb2.WaitEventNode(
                    event_name="paid", correlation_key="input.order"
                ),
            )
        ],
    )


def test_cancel_answers_the_run_as_committed(engine: Engine) -> None:
    register(engine, orders_definition())

    async def body(committer: Committer) -> tuple[str, Any]:
        run_id = await start(committer, "orders", {"amount": 5, "note": "n"})
        return run_id, await committer.submit(ops.CancelRun(NAMESPACE, run_id, "twice", "bob"))

    run_id, answer = with_committer(engine, body)

    assert isinstance(answer, ops.CommittedRun)
    assert answer.state.status == "CANCELLED"
    assert answer.state.status == load_run(engine, run_id).status
    # Exactly what reading the run after the commit shows, whatever `get_run` reads.
    assert answer.view == reread(engine, run_id)
    assert answer.view.run.status == "CANCELLED"


def test_cancel_without_read_back_answers_the_state_alone(engine: Engine) -> None:
    register(engine, orders_definition())

    async def body(committer: Committer) -> Any:
        run_id = await start(committer, "orders", {"amount": 5, "note": "n"})
        cancel = ops.CancelRun(NAMESPACE, run_id, "twice", "bob", read_back=False)
        return await committer.submit(cancel)

    answer = with_committer(engine, body)

    assert not isinstance(answer, ops.CommittedRun) and answer.status == "CANCELLED"


def test_a_refused_cancel_is_a_refusal_and_leaves_the_batch_alone(engine: Engine) -> None:
    register(engine, orders_definition())

    async def body(committer: Committer) -> tuple[Any, ...]:
        run_id = await start(committer, "orders", {"amount": 5, "note": "n"})
        return await asyncio.gather(
            committer.submit(ops.CancelRun(NAMESPACE, "no-such-run", "", "bob")),
            committer.submit(ops.CancelRun("elsewhere", run_id, "", "bob")),
            committer.submit(ops.CancelRun(NAMESPACE, run_id, "", "bob")),
            return_exceptions=True,
        )

    missing, other_namespace, cancelled = with_committer(engine, body)

    assert isinstance(missing, errors.NotFound) and isinstance(missing, ops.NotFound)
    assert isinstance(other_namespace, errors.NotFound)
    assert isinstance(cancelled, ops.CommittedRun)


def test_skipping_a_dead_letter_answers_the_run_as_committed(engine: Engine) -> None:
    register(engine, orders_definition())

    async def body(committer: Committer) -> tuple[Any, Any]:
        # No worker for charge: nothing changes the run after the skip but this test.
        session = await connect(committer, ["reserve-step"])
        run_id = await start(committer, "orders", {"amount": 5, "note": "n"})
        task = await next_task(session)
        error = {"type": "Declined", "message": "no", "retryable": False}
        failed = ops.RecordResult(session.id, "worker-1", task.task_id, "fail", error=error)
        await committer.submit(failed)
        skip = StepSkipRequested("reserve", "carol", "done by hand", 0.0, {"reservation": "r"})
        answer = await committer.submit(ops.TriageStep(NAMESPACE, run_id, skip))
        after = await asyncio.to_thread(reread, engine, run_id)
        await disconnect(committer, session)
        return answer, after

    answer, after = with_committer(engine, body)

    assert isinstance(answer, ops.CommittedRun)
    assert answer.state.steps["reserve"].output == {"reservation": "r"}
    assert answer.view == after
    # The skip scheduled charge, written in the same transaction.
    assert {(t.node_id, t.status) for t in answer.view.tasks} == {("charge", "ready")}


def test_heartbeat_details_are_kept_per_open_attempt_until_it_ends(engine: Engine) -> None:
    register(engine, orders_definition())
    first = HeartbeatDetails("json/plain", b'{"done": 1}')
    latest = HeartbeatDetails("json/plain", b'{"done": 2}')

    def details(run_id: str) -> dict[tuple[str, int], HeartbeatDetails]:
        with engine.connect() as connection:
            return heartbeats.latest_details(connection, run_id)

    async def body(committer: Committer) -> None:
        session = await connect(committer, ["reserve-step"])
        run_id = await start(committer, "orders", {"amount": 5, "note": "n"})
        task = await next_task(session)
        await committer.submit(ops.ExtendLeases(session.id, [task.task_id]))
        assert details(run_id) == {}
        await committer.submit(ops.ExtendLeases(session.id, [task.task_id], {task.task_id: first}))
        assert details(run_id) == {("reserve", 1): first}
        await committer.submit(ops.ExtendLeases(session.id, [task.task_id], {task.task_id: latest}))
        assert details(run_id) == {("reserve", 1): latest}
        # Details for a task that is not leased (finished, or never was) are not kept.
        await committer.submit(ops.ExtendLeases(session.id, [], {f"{run_id}:ship:1": first}))
        assert details(run_id) == {("reserve", 1): latest}
        done = ops.RecordResult(session.id, "worker-1", task.task_id, "complete", output={})
        await committer.submit(done)
        assert details(run_id) == {}
        await disconnect(committer, session)

    with_committer(engine, body)


def test_an_event_credits_its_sender_delivered_at_once_or_kept(engine: Engine) -> None:
    register(engine, await_payment())

    async def body(committer: Committer) -> tuple[str, str]:
        waiting = await start(committer, "await-payment", {"order": "A"})
        sent = await committer.submit(
            ops.SendEvent(NAMESPACE, "paid", "A", {"n": 1}, "e-1", principal="carol")
        )
        assert sent.delivered_to == [waiting]
        kept = await committer.submit(
            ops.SendEvent(NAMESPACE, "paid", "B", {"n": 2}, "e-2", principal="dave")
        )
        assert kept.stored
        later = await start(committer, "await-payment", {"order": "B"})
        return waiting, later

    with events_received() as received:
        waiting, later = with_committer(engine, body)

    with engine.connect() as connection:
        senders = dict(connection.execute(select(events.c.id, events.c.sent_by)).all())
    assert senders == {"e-1": "carol", "e-2": "dave"}
    # The kept event credits who sent it, not whoever's batch found it for the later run.
    assert received == {waiting: ["carol"], later: ["dave"]}


def test_an_event_without_a_sender_is_the_systems(engine: Engine) -> None:
    register(engine, await_payment())

    async def body(committer: Committer) -> str:
        run_id = await start(committer, "await-payment", {"order": "A"})
        await committer.submit(ops.SendEvent(NAMESPACE, "paid", "A", {}, "e-1"))
        return run_id

    with events_received() as received:
        run_id = with_committer(engine, body)

    assert received == {run_id: ["system"]}


@pytest.mark.parametrize("seed", [1, 2])
def test_starts_take_the_committers_random_source(engine: Engine, seed: int) -> None:
    """The engine gets the committer's source on the start path too (law 4)."""
    register(engine, orders_definition())
    drawn: list[float] = []

    class Recording(random.Random):
        def random(self) -> float:
            value = super().random()
            drawn.append(value)
            return value

    committer = Committer(
        engine,
        DefinitionCache(engine),
        StepCatalogCache(engine),
        lease_seconds=60,
        rng=Recording(seed),
    )
    seen: list[Callable[[], float]] = []
    original = machine.start_run

    def spy(**kwargs: Any) -> Any:
        seen.append(kwargs["uniform"])
        return original(**kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(machine, "start_run", spy)
        committer.start()
        try:
            asyncio.run(asyncio.wait_for(start(committer, "orders", {"amount": 1}), WAIT))
        finally:
            committer.stop()

    (uniform,) = seen
    before = len(drawn)
    value = uniform()
    assert drawn[before:] == [value]
