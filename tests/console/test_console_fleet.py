"""Workers and definitions from the console against a real control plane: a queue no worker
can take is flagged, a connected worker is listed; two versions diff node by node and one is
deprecated with its reason. And the request ids of the console's writes: a change repeated
after no answer carries the same id, a new change a new one."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from console.client import ControlPlane, Unreachable
from console.modals import CommentModal, TextModal
from console.paged_table import PagedTable
from console.screens.definitions import DefinitionsScreen
from console.screens.workers import WorkersScreen
from tests.console.console_support import SIZE, console, text_of, until
from tests.support.processes import ControlPlane as ControlPlaneProcess
from tests.support.processes import StartWorker
from tests.support.runs import register, start_run
from tests.support.workflows import single_step, three_steps


def test_workers_show_who_is_connected_and_which_queue_nobody_serves(
    control_plane: ControlPlaneProcess, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, single_step("orphaned", {"max_attempts": 1}, step_type="nobody-serves"))
    start_run(stub, "orphaned", {"trail": []})
    worker()

    async def scenario() -> None:
        app = console(control_plane.address)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("colon", *"workers", "enter")
            await until(pilot, lambda: isinstance(app.screen, WorkersScreen), "workers")
            workers = app.screen.query_one("#workers", PagedTable)
            await until(pilot, lambda: workers.keys, "the worker listed")
            row = workers.table.cells(workers.keys[0])
            assert "e2e-work@1" in row[1] and row[4] == "connected", row
            await until(pilot, lambda: "NO capable worker" in text_of(app, "#queues-note"), "")
            assert "nobody-serves" in text_of(app, "#queues-note")

    asyncio.run(scenario())


def test_two_versions_diff_and_one_is_deprecated_with_its_reason(
    control_plane: ControlPlaneProcess,
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("versioned", "1"))
    changed = three_steps("versioned", "2")
    changed.nodes[1].task.step_type = "e2e-work"
    register(stub, changed)

    async def scenario() -> None:
        app = console(control_plane.address)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("colon", *"definitions", "enter")
            await until(pilot, lambda: isinstance(app.screen, DefinitionsScreen), "definitions")
            versions = app.screen.query_one(PagedTable)
            await until(pilot, lambda: len(versions.keys) == 2, "both versions")
            assert versions.keys == ["versioned@1", "versioned@2"]

            # On version 2 alone, `f` diffs it with the version before it.
            versions.table.move_cursor(row=1)
            await pilot.press("f")
            await until(pilot, lambda: isinstance(app.screen, TextModal), "the diff")
            diff = app.screen.query_one("#text").text  # type: ignore[attr-defined]
            assert "versioned@1 -> versioned@2" in diff, diff
            assert "~ node b" in diff and "e2e-work-sync -> e2e-work" in diff, diff
            await pilot.press("escape")

            versions.table.move_cursor(row=0)
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, CommentModal), "a reason")
            await pilot.press(*"typo in b", "enter")
            await until(
                pilot, lambda: "deprecated: typo in b" in versions.table.cells("versioned@1"), ""
            )

    asyncio.run(scenario())
    listed = stub.ListDefinitions(ws.ListDefinitionsRequest(name="versioned"), timeout=10)
    first = next(d for d in listed.definitions if d.version == "1")
    assert first.deprecated and first.deprecation_reason == "typo in b"


class _NoAnswer(grpc.RpcError):
    """What a call that got no answer in time raises."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return "Deadline Exceeded"


def test_a_change_repeated_after_no_answer_carries_the_same_request_id(
    unused_address: str,
) -> None:
    control = ControlPlane(unused_address, "default")
    sent: list[str] = []

    def retry_step(request: ws.RetryStepRequest, **options: object) -> ws.RetryStepResponse:
        sent.append(request.request_id)
        if len(sent) < 3:
            raise _NoAnswer()
        return ws.RetryStepResponse()

    control.workflows.RetryStep = retry_step  # type: ignore[method-assign,assignment]

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(Unreachable):
                await control.retry_step("r1", "b", None, "again")
        await control.retry_step("r1", "b", None, "again")  # answered at last
        await control.retry_step("r1", "b", None, "again")  # a new, deliberate retry

    asyncio.run(scenario())
    control.close()
    assert sent[0] == sent[1] == sent[2], "the same change while its outcome was unknown"
    assert sent[3] != sent[0], "answered: the next retry is another request"
