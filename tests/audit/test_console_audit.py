"""The console and the audit: the run screen's header marks a run whose history does not
verify, naming the event altered; a decision from the approvals screen is bound to what the
screen displayed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from surefoot_worker.authoring import definition_from_dict
from textual.widgets import Input

from console.live_table import LiveTable
from console.modals import CommentModal
from console.screens.approvals import ApprovalsScreen
from console.screens.run import RunScreen
from controlplane.store.database import open_engine
from controlplane.store.schema import approvals, history
from tests.console.console_support import SIZE, console, notifications, text_of, until
from tests.support.approval_auth import ALICE, AuthControlPlane, write_auth_file
from tests.support.processes import ControlPlane, ProcessRegistry
from tests.support.runs import events_of, register, start_run
from tests.support.runs import history as read_history
from tests.support.workflows import three_steps

ALARM = "history altered at seq"
LOOK = {
    "name": "look",
    "version": "1",
    "nodes": [{"id": "look", "approval": {"title": "Look", "show": {"amount": "input.amount"}}}],
}


def test_the_run_screen_marks_a_run_whose_history_was_altered(
    control_plane: ControlPlane, database_url: str
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("watched"))
    # No worker: each run stops at RUN_STARTED, STEP_SCHEDULED.
    altered, intact = (start_run(stub, "watched", {"trail": [n]}) for n in range(2))
    engine = open_engine(database_url, pool_size=1)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(history)
                .where(history.c.run_id == altered, history.c.seq == 1)
                .values(principal="someone-else")
            )
    finally:
        engine.dispose()

    async def header_of(run_id: str) -> str:
        """The run screen's header once the run's chain has been checked."""
        app = console(control_plane.address)
        async with app.run_test(size=SIZE) as pilot:
            screen = RunScreen(app.control_plane, run_id)
            app.push_screen(screen)
            await until(pilot, lambda: screen.chain is not None, "chain verified")
            await until(pilot, lambda: run_id in text_of(app, "#run-header"), "header shown")
            return text_of(app, "#run-header")

    assert "history altered at seq 1 (edited): hash mismatch" in asyncio.run(header_of(altered))
    assert ALARM not in asyncio.run(header_of(intact))


@pytest.fixture
def plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    assert server.stop() in (0, None)


def test_the_console_decides_on_what_it_displayed(
    plane: AuthControlPlane, database_url: str
) -> None:
    stub = plane.stub
    register(stub, definition_from_dict(LOOK))
    run_id = start_run(stub, "look", {"amount": 10})
    approval_id = f"{run_id}:look"

    async def decide_while_it_changes() -> list[str]:
        app = console(plane.address, token=ALICE)
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ApprovalsScreen), "screen")
            table = app.screen.query_one(LiveTable)
            await until(pilot, lambda: approval_id in table.keys, "approval listed")
            await until(pilot, lambda: '"amount": 10' in text_of(app, "#shown"), "shown")
            table.move_cursor(row=table.keys.index(approval_id))
            await pilot.press("y")
            await until(pilot, lambda: isinstance(app.screen, CommentModal), "comment dialog")
            # What the approval shows changes while the approver reads the dialog (nothing
            # refreshes under it): the decision was made on the old content.
            engine = open_engine(database_url, pool_size=1)
            try:
                with engine.begin() as connection:
                    connection.execute(
                        update(approvals)
                        .where(approvals.c.id == approval_id)
                        .values(shown='{"amount": 10000}')
                    )
            finally:
                engine.dispose()
            app.screen.query_one(Input).value = "fine"
            await pilot.press("enter")
            await until(pilot, lambda: shown, "an answer shown")
        return shown

    shown = asyncio.run(decide_while_it_changes())
    assert len(shown) == 1 and shown[0].startswith("FAILED_PRECONDITION"), shown
    assert "is not what was shown" in shown[0]
    assert not events_of(read_history(stub, run_id), "APPROVAL_DECIDED")
