"""Helpers of the run-control tests: a four-step workflow, task rows, refusals."""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy import select
from surefoot.v1 import definition_pb2
from surefoot_worker.authoring import definition_from_dict

from controlplane.store.database import open_engine
from controlplane.store.schema import tasks
from tests.support.runs import Stub, history
from tests.support.workflows import shaped_by, task_node


def four_steps(name: str) -> definition_pb2.WorkflowDefinition:
    """a → b → c → d, each step's trail the previous step's output, shaped by the input."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                task_node("a", "b", shaped_by("input.trail", "a")),
                task_node("b", "c", shaped_by("steps.a.output.trail", "b")),
                task_node("c", "d", shaped_by("steps.b.output.trail", "c")),
                task_node("d", None, shaped_by("steps.c.output.trail", "d")),
            ],
        }
    )


def task_statuses(database_url: str, run_id: str) -> dict[str, str]:
    """Node id -> status of the run's task rows, read from the database."""
    engine = open_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(tasks.c.node_id, tasks.c.status).where(tasks.c.run_id == run_id)
            )
            return {row.node_id: row.status for row in rows}
    finally:
        engine.dispose()


def refused(call: Any, request: Any) -> grpc.RpcError:
    """The error of a call that must fail."""
    try:
        call(request, timeout=30)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError(f"{type(request).__name__} was served; it must be refused")


def seqs(stub: Stub, run_id: str) -> int:
    return len(history(stub, run_id))
