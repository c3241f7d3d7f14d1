"""Approve and reject from a run's screen on a control plane that knows bearer tokens: the
prompt shows what is decided, the decision carries the comment, the token's principal and
the hash of what the console showed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from surefoot_worker.authoring import definition_from_dict
from textual.widgets import Input, Static

from console.action_prompt import ActionPrompt
from console.screens.run import RunScreen
from console.trace_table import TraceTable
from tests.console.console_support import SIZE, console, notifications, until
from tests.support.approval_auth import ALICE, AuthControlPlane, write_auth_file
from tests.support.processes import ProcessRegistry, StartWorker
from tests.support.runs import events_of, history, register, start_run, wait_for_status
from tests.support.workflows import task_node


@pytest.fixture
def control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    """Deciding needs a known caller: the console acts as alice (operator, approver)."""
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    exit_code = server.stop()
    assert exit_code in (0, None), f"the control plane exited with {exit_code} on SIGTERM"


def shipping(name: str) -> Any:
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "manager",
                    "approval": {
                        "title": "Ship it?",
                        "show": {"amount": "input.amount"},
                        "approved_next": "ship",
                        "rejected_next": "apologise",
                    },
                },
                task_node("ship", None, "{trail: `[]`}"),
                task_node("apologise", None, "{trail: `[]`}"),
            ],
        }
    )


def said(shown: list[str], word: str) -> bool:
    return any(word in line for line in shown)


async def decide(app: Any, pilot: Any, run_id: str, key: str, comment: str) -> None:
    """Open the run, select its approval step, press `key` and send `comment`."""
    app.go(f"run {run_id}")
    await until(pilot, lambda: getattr(app.screen, "run_id", "") == run_id, "opened")
    screen = app.screen
    assert isinstance(screen, RunScreen)
    await until(pilot, lambda: screen.run and screen.run.blocked_on, "blocked on")
    table = screen.query_one(TraceTable)
    await until(pilot, lambda: "manager" in table.keys, "the approval step")
    table.select("manager")
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, ActionPrompt), "prompt")
    # What the approver decides on is in the prompt.
    explanation = app.screen.query_one("#explanation Static", Static)
    assert '"amount"' in str(explanation.content), explanation.content
    app.screen.query_one(Input).value = comment
    await pilot.press("enter")


def test_approve_and_reject_from_the_run_screen_record_the_comment(
    control_plane: AuthControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, shipping("shipping"))
    worker()
    approved = start_run(stub, "shipping", {"amount": 10})
    rejected = start_run(stub, "shipping", {"amount": 99999})
    for run_id in (approved, rejected):
        wait_for_status(stub, run_id, "WAITING")
    decisions = {approved: ("y", "approved", "fine"), rejected: ("n", "rejected", "too much")}

    async def scenario() -> None:
        app = console(control_plane.address, token=ALICE)
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            for run_id, (key, verb, comment) in decisions.items():
                await decide(app, pilot, run_id, key, comment)
                await until(pilot, partial(said, shown, verb), f"{verb}: {shown}")
                await pilot.press("escape")

    asyncio.run(scenario())
    for run_id, (_, decision, comment) in decisions.items():
        wait_for_status(stub, run_id, "COMPLETED")
        [decided] = events_of(history(stub, run_id), "APPROVAL_DECIDED")
        assert (decided.data["decision"], decided.data["comment"]) == (decision, comment)
        assert decided.principal == "alice"
        # The decision names the content the console showed.
        assert decided.data.get("content_hash"), decided.data
