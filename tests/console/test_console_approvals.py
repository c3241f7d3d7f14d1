"""Deciding an approval from the console on a control plane that knows bearer tokens: the
console acts as its token's principal, and a console without a token is refused in one line."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from surefoot_worker.authoring import definition_from_dict
from textual.widgets import Input

from console.live_table import LiveTable
from console.modals import CommentModal
from console.screens.approvals import ApprovalsScreen
from tests.console.console_support import SIZE, console, notifications, text_of, until
from tests.support.approval_auth import ALICE, AuthControlPlane, write_auth_file
from tests.support.processes import ProcessRegistry, StartWorker
from tests.support.runs import (
    events_of,
    get_run,
    history,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.workflows import task_node

TITLE = "Onboard customer"


@pytest.fixture
def control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    """`surefoot server --auth-file` with the tokens of support/approval_auth.py: deciding
    needs a known caller, so who the console acts as is visible in the history."""
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    exit_code = server.stop()
    assert exit_code in (0, None), f"the control plane exited with {exit_code} on SIGTERM"


def onboarding(name: str) -> Any:
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "manager",
                    "approval": {
                        "title": TITLE,
                        "approvers": ["group:managers"],
                        "show": {"customer": "input.customer", "amount": "input.amount"},
                        "approved_next": "provision",
                        "rejected_next": "apologise",
                    },
                },
                task_node("provision", None, "{trail: [input.customer]}"),
                task_node("apologise", None, "{trail: [input.customer]}"),
            ],
        }
    )


async def approve_selected(app: Any, pilot: Any, approval_id: str, comment: str) -> None:
    """`p`, the approval under the cursor, `y`, a comment and enter."""
    await pilot.press("p")
    await until(pilot, lambda: isinstance(app.screen, ApprovalsScreen), "approvals screen")
    table = app.screen.query_one(LiveTable)
    await until(pilot, lambda: approval_id in table.keys, "approval listed")
    table.move_cursor(row=table.keys.index(approval_id))
    await pilot.press("y")
    await until(pilot, lambda: isinstance(app.screen, CommentModal), "comment dialog")
    app.screen.query_one(Input).value = comment
    await pilot.press("enter")


def test_approving_from_the_console_completes_the_run_as_the_tokens_principal(
    control_plane: AuthControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, onboarding("onboarding"))
    worker()
    run_id = start_run(stub, "onboarding", {"customer": "ACME", "amount": 1200})
    wait_for_status(stub, run_id, "WAITING")
    approval_id = f"{run_id}:manager"

    async def without_a_token() -> None:
        # Refused from the first read on: nothing is listed to decide on.
        app = console(control_plane.address)
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ApprovalsScreen), "screen")

            def refused() -> list[str]:
                return [line for line in shown if line.startswith("UNAUTHENTICATED")]

            await until(pilot, refused, "the inbox's refusal shown, in one line")
            await until(pilot, lambda: "cannot tell" in text_of(app, "#inbox"), "said unknown")
            assert "UNAUTHENTICATED" in text_of(app, "#inbox")
            assert approval_id not in app.screen.query_one(LiveTable).keys
            assert app.is_running

    async def as_alice() -> None:
        app = console(control_plane.address, token=ALICE)
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ApprovalsScreen), "screen")
            await until(pilot, lambda: TITLE in text_of(app, "#shown"), "what is shown")
            details = text_of(app, "#shown")
            assert '"customer": "ACME"' in details and '"amount": 1200' in details, details
            await pilot.press("escape")
            await approve_selected(app, pilot, approval_id, "looks good")
            await until(pilot, lambda: any(s.startswith("approved") for s in shown), "done")
            assert shown == [f"approved {approval_id} as alice"], shown
            table = app.screen.query_one(LiveTable)
            await until(pilot, lambda: approval_id not in table.keys, "no longer pending")

    asyncio.run(without_a_token())
    assert status_name(get_run(stub, run_id).status) == "WAITING"
    asyncio.run(as_alice())

    wait_for_status(stub, run_id, "COMPLETED")
    [decided] = events_of(history(stub, run_id), "APPROVAL_DECIDED")
    assert decided.principal == "alice"
    assert decided.data["decision"] == "approved" and decided.data["comment"] == "looks good"
    assert events_of(history(stub, run_id), "ATTEMPT_COMPLETED", "provision")
