"""The run screen's actions against a real control plane and worker: each asks for a comment
and writes its event with it (retry, retry with edited input, skip, pause, resume, cancel,
abandon, fork; approvals are in test_console_run_approvals.py); a drastic one is not done by
enter alone; an action whose answer was lost is sent again under its request id and acts
once."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from textual.widgets import Input, TextArea

from console.action_prompt import ActionPrompt
from console.app import SurefootConsole
from console.client import ControlPlane as ConsoleControlPlane
from console.client import ReadOnly
from console.modals import JsonModal
from console.screens.run import RunScreen
from console.trace_table import TraceTable
from tests.console.console_support import SIZE, console, notifications, until
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    events_of,
    get_run,
    history,
    payload_value,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.workflows import three_steps

DECLINE_B = {"trail": [], "b": {"non_retryable": True}}
SLOW_A = {"trail": [], "a": {"sleep_seconds": 60}}


async def open_run(app: SurefootConsole, pilot: Any, run_id: str) -> RunScreen:
    app.go(f"run {run_id}")
    await until(pilot, lambda: isinstance(app.screen, RunScreen), "run screen")
    screen = app.screen
    assert isinstance(screen, RunScreen)  # as awaited just above
    await until(pilot, lambda: screen.query(TraceTable) and screen.run is not None, "loaded")
    return screen


async def select(pilot: Any, screen: RunScreen, node_id: str) -> None:
    table = screen.query_one(TraceTable)
    await until(pilot, lambda: node_id in table.keys, f"{node_id} in the trace")
    table.select(node_id)
    assert screen.selected_node == node_id


async def act(
    app: SurefootConsole, pilot: Any, key: str, comment: str, *, confirm: bool = False
) -> None:
    """Press `key`, write `comment` in the prompt and send it (`y` after enter if drastic)."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, ActionPrompt), f"prompt of {key}")
    prompt = app.screen
    assert isinstance(prompt, ActionPrompt)
    if comment:
        prompt.query_one(Input).value = comment
    await pilot.press("enter")
    if confirm:
        await pilot.press("y")
    await until(pilot, lambda: not isinstance(app.screen, ActionPrompt), "prompt closed")


async def edit_json(app: SurefootConsole, pilot: Any, key: str, text: str) -> str:
    """Press `key`, replace the JSON dialog's text and send it; returns what it offered."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, JsonModal), f"editor of {key}")
    editor = app.screen.query_one(TextArea)
    offered = editor.text
    editor.text = text
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(app.screen, ActionPrompt), "comment prompt")
    return offered


def test_retry_retry_edited_skip_and_fork_write_their_comments(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("triage"))
    worker()
    to_retry = start_run(stub, "triage", DECLINE_B)
    to_skip = start_run(stub, "triage", DECLINE_B)
    for run_id in (to_retry, to_skip):
        wait_for_status(stub, run_id, "NEEDS_ATTENTION")

    async def scenario() -> str:
        app = console(control_plane.address)
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_run(app, pilot, to_retry)
            await select(pilot, screen, "b")
            await act(app, pilot, "r", "as it was")
            # The same input declines again: a second dead letter.
            await asyncio.to_thread(dead_lettered_twice, stub, to_retry)

            offered = await edit_json(app, pilot, "e", '{"trail": ["a"]}')
            assert '"non_retryable": true' in offered, offered
            app.screen.query_one(Input).value = "card replaced"
            await pilot.press("enter")
            await asyncio.to_thread(wait_for_status, stub, to_retry, "COMPLETED")

            # Fork from c: a new run reusing a and b, opened on its own screen.
            await select(pilot, screen, "c")
            await act(app, pilot, "f", "run c again")
            await until(pilot, lambda: app.screen is not screen, "the fork's screen")
            fork = app.screen
            assert isinstance(fork, RunScreen) and fork.run_id != to_retry
            await pilot.press("escape")

            skipped = await open_run(app, pilot, to_skip)
            await select(pilot, skipped, "b")
            await edit_json(app, pilot, "s", '{"trail": ["a", "b-by-hand"]}')
            app.screen.query_one(Input).value = "done by hand"
            await pilot.press("enter")
            await asyncio.to_thread(wait_for_status, stub, to_skip, "COMPLETED")
            assert any(s.startswith(f"forked {to_retry} from c as ") for s in shown), shown
            return fork.run_id

    fork_id = asyncio.run(scenario())

    first, second = events_of(history(stub, to_retry), "STEP_RETRIED", "b")
    assert (first.data["comment"], first.data["input_edited"]) == ("as it was", False)
    assert (second.data["comment"], second.data["input_edited"]) == ("card replaced", True)
    assert payload_value(get_run(stub, to_retry).output)["trail"] == ["a", "b", "c"]
    [skipped_event] = events_of(history(stub, to_skip), "STEP_SKIPPED", "b")
    assert skipped_event.data["comment"] == "done by hand"
    assert payload_value(get_run(stub, to_skip).output)["trail"] == ["a", "b-by-hand", "c"]
    [started] = events_of(history(stub, fork_id), "RUN_STARTED")
    assert started.data["comment"] == "run c again"
    assert started.data["forked_from"] == {"run_id": to_retry, "node_id": "c"}
    assert [e.node_id for e in events_of(history(stub, fork_id), "STEP_REUSED")] == ["a", "b"]


def dead_lettered_twice(stub: Any, run_id: str) -> None:
    def twice() -> bool:
        return len(events_of(history(stub, run_id), "STEP_DEAD_LETTERED", "b")) == 2

    from tests.support.eventually import assert_eventually

    assert_eventually(twice, 30.0, message="b dead-lettered again")


def test_pause_resume_cancel_and_abandon_write_their_reasons(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("held"))
    worker()
    held = start_run(stub, "held", SLOW_A)
    abandoned = start_run(stub, "held", SLOW_A)

    async def scenario() -> None:
        app = console(control_plane.address)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_run(app, pilot, held)
            await act(app, pilot, "P", "investigating")
            await until(pilot, lambda: screen.run and screen.run.HasField("paused"), "paused")
            assert "PAUSED by" in str(screen.query_one("#run-header").render())
            await act(app, pilot, "P", "")  # resume: no comment to give
            await until(pilot, lambda: screen.run and not screen.run.HasField("paused"), "on")

            # Drastic: enter in the comment box moves to "No"; enter there cancels nothing.
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, ActionPrompt), "cancel prompt")
            app.screen.query_one(Input).value = "not this one"
            await pilot.press("enter", "enter")
            await until(pilot, lambda: app.screen is screen, "dismissed")
            assert status_name(get_run(stub, held).status) == "RUNNING"
            await act(app, pilot, "x", "wrong order", confirm=True)
            await asyncio.to_thread(wait_for_status, stub, held, "CANCELLED")

            other = await open_run(app, pilot, abandoned)
            await act(app, pilot, "X", "customer left", confirm=True)
            await asyncio.to_thread(wait_for_status, stub, abandoned, "COMPENSATED")
            assert other.run_id == abandoned

    asyncio.run(scenario())

    events = history(stub, held)
    [paused] = events_of(events, "RUN_PAUSED")
    assert paused.data["reason"] == "investigating"
    assert len(events_of(events, "RUN_RESUMED")) == 1
    [cancelled] = events_of(events, "RUN_CANCELLED")
    assert cancelled.data["reason"] == "wrong order"
    [compensating] = events_of(history(stub, abandoned), "COMPENSATION_STARTED")
    assert compensating.data["reason"].endswith(": customer left"), compensating.data


class AnswerLost(grpc.RpcError):
    """What a call whose answer never came looks like: DEADLINE_EXCEEDED."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return "Deadline Exceeded"


def test_an_action_whose_answer_was_lost_is_sent_again_under_its_request_id_and_acts_once(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("lost"))
    worker()
    run_id = start_run(stub, "lost", DECLINE_B)
    wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    request_ids: list[str] = []

    async def scenario() -> None:
        app = console(control_plane.address)
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_run(app, pilot, run_id)
            real_retry = screen.client._stub.RetryStep

            def retry_whose_answer_is_lost(request: Any, **options: Any) -> Any:
                # The control plane acts; its answer is lost on the way back.
                request_ids.append(request.request_id)
                real_retry(request, **options)
                raise AnswerLost()

            screen.client._stub.RetryStep = retry_whose_answer_is_lost  # type: ignore[assignment]
            await select(pilot, screen, "b")
            await act(app, pilot, "r", "once")
            await until(pilot, lambda: any("no answer" in s for s in shown), "said")
            assert screen.client.unanswered is not None

            def retry_answered(request: Any, **options: Any) -> Any:
                request_ids.append(request.request_id)
                return real_retry(request, **options)

            screen.client._stub.RetryStep = retry_answered  # type: ignore[assignment]
            # `.` sends it again; the same request typed again would too.
            await pilot.press("full_stop")
            await until(pilot, lambda: any("answered" in s for s in shown), "answered")
            assert screen.client.unanswered is None

    asyncio.run(scenario())
    assert len(request_ids) == 2 and request_ids[0] == request_ids[1], request_ids
    assert len(events_of(history(stub, run_id), "STEP_RETRIED", "b")) == 1


def test_a_read_only_console_offers_no_action_on_a_run_and_its_client_sends_none(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("looked_at"))
    worker()
    run_id = start_run(stub, "looked_at", DECLINE_B)
    wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    events_before = len(history(stub, run_id))

    async def scenario() -> None:
        readonly = ConsoleControlPlane(control_plane.address, "default", readonly=True)
        app = SurefootConsole(readonly)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_run(app, pilot, run_id)
            await select(pilot, screen, "b")
            for key in ("r", "e", "s", "P", "x", "X", "f", "y"):
                await pilot.press(key)
                assert app.screen is screen, f"{key} opened a dialog on a read-only console"
            with pytest.raises(ReadOnly):
                await screen.client.retry_step(run_id, "b", "sneaked in")

    asyncio.run(scenario())
    assert len(history(stub, run_id)) == events_before
