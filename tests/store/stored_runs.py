"""Writing runs to a store the way the committer does: engine transitions through a RunBatch,
one transaction per change, so that what the tests read back is what production writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from surefoot.v1 import common_pb2, definition_pb2

from controlplane.engine import machine
from controlplane.engine.definition import StepDeclaration, compile_definition
from controlplane.engine.events import RunEvent, Transition
from controlplane.engine.state import RunState
from controlplane.store import definitions
from controlplane.store.database import is_postgres
from controlplane.store.run_batch import RunBatch

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z
NAMESPACE = "default"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def no_step_types(_name: str, _version: str) -> StepDeclaration | None:
    return None


def _task(
    node_id: str, next: str = "", input: str = "", max_attempts: int = 2
) -> definition_pb2.Node:
    return definition_pb2.Node(
        id=node_id,
        next=next,
        task=definition_pb2.TaskNode(
            step_type=f"{node_id}-step",
            input=input,
            idempotency=common_pb2.IDEMPOTENCY_KEY,
            retry=common_pb2.RetryPolicy(max_attempts=max_attempts, initial_interval_seconds=4),
        ),
    )


def orders_definition(
    name: str = "orders", version: str = "1"
) -> definition_pb2.WorkflowDefinition:
    """reserve -> charge -> ship, two attempts each."""
    return definition_pb2.WorkflowDefinition(
        name=name,
        version=version,
        nodes=[
            _task("reserve", next="charge"),
            _task("charge", next="ship", input="{amount: input.amount, note: input.note}"),
            _task("ship", input="steps.reserve.output"),
        ],
    )


def register(
    engine: Engine, proto: definition_pb2.WorkflowDefinition, namespace: str = NAMESPACE
) -> definitions.DefinitionRow:
    with engine.begin() as connection:
        row, _created = definitions.register(connection, namespace, proto)
    return row


def save_new_run(
    engine: Engine,
    definition: definitions.DefinitionRow,
    run_id: str,
    *,
    input: Any = None,
    time: float = T0,
    request_id: str | None = None,
) -> tuple[RunState, Transition]:
    """Start a run and commit it, as StartRun does."""
    state, transition = machine.start_run(
        run_id=run_id,
        namespace=definition.namespace,
        definition=compile_definition(definition.message()),
        input=input,
        time=time,
        catalog=no_step_types,
        uniform=lambda: 0.5,
        request_id=request_id or "",
    )
    with engine.begin() as connection:
        batch = RunBatch(connection, time, lock_rows=is_postgres(engine))
        batch.add_run(state, definition.id, TRACE_ID, request_id, transition)
        batch.flush()
    return state, transition


def load_run(engine: Engine, run_id: str) -> RunState:
    """The run as a new transaction loads it under its row lock."""
    with engine.begin() as connection:
        batch = RunBatch(connection, T0, lock_rows=is_postgres(engine))
        batch.lock_runs([run_id])
        return batch.runs[run_id].state


def save_event(
    engine: Engine, definition: definitions.DefinitionRow, run_id: str, event: RunEvent
) -> tuple[RunState, Transition]:
    """Load the run, apply `event` and commit the change, in one transaction."""
    compiled = compile_definition(definition.message())
    with engine.begin() as connection:
        batch = RunBatch(connection, event.time, lock_rows=is_postgres(engine))
        batch.lock_runs([run_id])
        state, transition = machine.apply(
            batch.runs[run_id].state, event, compiled, no_step_types, lambda: 0.5
        )
        batch.record(state, transition)
        batch.flush()
    return state, transition
