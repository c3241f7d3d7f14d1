"""RunBatch: a run's state, history and tasks survive the round trip through the database.

The committer keeps no run in memory between transactions that it could not rebuild from
these rows (law 1), so what a new transaction loads must equal what the last one saved.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from controlplane.engine import machine
from controlplane.engine import state as s
from controlplane.engine.definition import compile_definition
from controlplane.engine.events import (
    AttemptCompleted,
    AttemptFailed,
    AttemptLost,
    CancelRequested,
    RunEvent,
)
from controlplane.engine.state import RunState
from controlplane.store.codec import load_json
from controlplane.store.database import is_postgres
from controlplane.store.run_batch import RunBatch, traceparent_for
from controlplane.store.run_queries import read_history
from controlplane.store.schema import runs, tasks
from tests.store.stored_runs import (
    T0,
    TRACE_ID,
    load_run,
    no_step_types,
    orders_definition,
    register,
    save_event,
    save_new_run,
)

# Text that a careless encoding would mangle: non-ASCII, quotes, a NUL escape, big numbers.
ORDER = {
    "order_id": "o-17",
    "amount": 1234567890123,
    "note": 'Zoë\'s "gift" ✓ \u0000 end',
    "lines": [{"sku": "A", "qty": 2}, None, 1.5, True],
}

RESERVED = AttemptCompleted("reserve", 1, {"reservation": "r-9", "ok": True}, T0 + 1.25)
TIMED_OUT = AttemptFailed(
    "charge", 1, {"type": "Timeout", "message": "gateway", "retryable": True}, T0 + 2.5
)
LOST_TWICE = AttemptLost("charge", 2, "lease expired", T0 + 3)
CHARGED = AttemptCompleted("charge", 1, {"charge_id": "ch-1"}, T0 + 4)
SHIPPED = AttemptCompleted("ship", 1, {"tracking": "T-1"}, T0 + 5.5)
CANCELLED = CancelRequested("ordered twice", "alice", T0 + 6)

SCENARIOS: dict[str, list[RunEvent]] = {
    "just started": [],
    "waiting to retry": [RESERVED, TIMED_OUT],
    "dead-lettered": [RESERVED, TIMED_OUT, LOST_TWICE],
    "completed": [RESERVED, CHARGED, SHIPPED],
    "cancelled": [RESERVED, CANCELLED],
}


@pytest.mark.parametrize("events", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_a_run_loads_exactly_as_it_was_saved(engine: Engine, events: list[RunEvent]) -> None:
    definition = register(engine, orders_definition())
    expected, _ = save_new_run(engine, definition, "run-1", input=ORDER, request_id="req-1")
    assert load_run(engine, "run-1") == expected

    for event in events:
        expected, _ = save_event(engine, definition, "run-1", event)
        assert load_run(engine, "run-1") == expected

    # The scenarios reach the states they are named after.
    assert expected.status in {s.RUNNING, s.NEEDS_ATTENTION, s.COMPLETED, s.CANCELLED}


def test_history_is_appended_with_consecutive_sequence_numbers(engine: Engine) -> None:
    definition = register(engine, orders_definition())
    _, started = save_new_run(engine, definition, "run-1", input=ORDER)
    transitions = [started]
    for event in (RESERVED, TIMED_OUT, CHARGED, SHIPPED):
        transitions.append(save_event(engine, definition, "run-1", event)[1])
    # Another run's history interleaved in time must not disturb this one's numbering.
    save_new_run(engine, definition, "run-2", input=ORDER)

    with engine.connect() as connection:
        rows = read_history(connection, "run-1")
        last_seq = connection.execute(select(runs.c.last_seq).where(runs.c.id == "run-1"))

    expected = [event for transition in transitions for event in transition.events]
    assert [row.seq for row in rows] == list(range(1, len(expected) + 1))
    assert last_seq.scalar_one() == len(expected)
    assert [(row.type, row.node_id, row.attempt) for row in rows] == [
        (event.type, event.node_id, event.attempt) for event in expected
    ]
    assert [row.time.timestamp() for row in rows] == [event.time for event in expected]
    assert [load_json(row.data) for row in rows] == [event.data for event in expected]
    started_row = rows[0]
    assert started_row.type == "RUN_STARTED"
    assert load_json(started_row.data)["input"] == ORDER


def test_read_history_pages_after_a_sequence_number(engine: Engine) -> None:
    definition = register(engine, orders_definition())
    save_new_run(engine, definition, "run-1", input=ORDER)
    save_event(engine, definition, "run-1", RESERVED)

    with engine.connect() as connection:
        everything = [row.seq for row in read_history(connection, "run-1")]
        page = [row.seq for row in read_history(connection, "run-1", after_seq=1, limit=2)]
    assert everything == [1, 2, 3, 4]
    assert page == [2, 3]


def open_tasks(engine: Engine, run_id: str) -> dict[str, tuple[int, str, float, object]]:
    with engine.connect() as connection:
        rows = connection.execute(select(tasks).where(tasks.c.run_id == run_id))
        return {
            row.id: (row.attempt, row.status, row.available_at.timestamp(), load_json(row.input))
            for row in rows
        }


def test_the_task_table_holds_exactly_the_open_attempt(engine: Engine) -> None:
    definition = register(engine, orders_definition())
    save_new_run(engine, definition, "run-1", input=ORDER)
    assert open_tasks(engine, "run-1") == {"run-1:reserve:1": (1, "ready", T0, ORDER)}

    save_event(engine, definition, "run-1", RESERVED)
    charge_input = {"amount": ORDER["amount"], "note": ORDER["note"]}
    assert open_tasks(engine, "run-1") == {
        "run-1:charge:1": (1, "ready", RESERVED.time, charge_input)
    }

    save_event(engine, definition, "run-1", TIMED_OUT)
    # The retry waits out its backoff as a row that becomes claimable later (law 5).
    assert open_tasks(engine, "run-1") == {
        "run-1:charge:2": (2, "ready", TIMED_OUT.time + 4, charge_input)
    }

    save_event(engine, definition, "run-1", CANCELLED)
    assert open_tasks(engine, "run-1") == {}


def test_tasks_carry_the_runs_trace(engine: Engine) -> None:
    definition = register(engine, orders_definition())
    save_new_run(engine, definition, "run-1", input=ORDER)
    with engine.connect() as connection:
        row = connection.execute(select(tasks)).one()
    assert row.traceparent == traceparent_for(TRACE_ID, "run-1:reserve:1")
    assert row.traceparent.startswith(f"00-{TRACE_ID}-")
    assert row.idempotency_key == "run-1:reserve"
    assert (row.workflow_name, row.step_type, row.namespace) == (
        "orders",
        "reserve-step",
        "default",
    )


def test_changes_recorded_in_one_batch_are_written_together(engine: Engine) -> None:
    """Two runs changed in one transaction; a task scheduled and removed in the same batch
    never reaches the table."""
    definition = register(engine, orders_definition())
    save_new_run(engine, definition, "run-1", input=ORDER)
    save_new_run(engine, definition, "run-2", input=ORDER)
    compiled = compile_definition(definition.message())

    def step(batch: RunBatch, run_id: str, event: RunEvent) -> RunState:
        state, transition = machine.apply(
            batch.runs[run_id].state, event, compiled, no_step_types, lambda: 0.5
        )
        batch.record(state, transition)
        return state

    with engine.begin() as connection:
        batch = RunBatch(connection, T0 + 10, lock_rows=is_postgres(engine))
        batch.lock_runs(["run-2", "run-1"])
        step(batch, "run-1", RESERVED)
        # charge:1 is scheduled and lost within this batch: it must never be written.
        first = step(batch, "run-1", AttemptLost("charge", 1, "stream closed", T0 + 1.5))
        second = step(batch, "run-2", CANCELLED)
        batch.flush()

    assert load_run(engine, "run-1") == first
    assert load_run(engine, "run-2") == second
    assert set(open_tasks(engine, "run-1")) == {"run-1:charge:2"}
    assert open_tasks(engine, "run-2") == {}
    with engine.connect() as connection:
        assert [row.seq for row in read_history(connection, "run-1")] == list(range(1, 7))
