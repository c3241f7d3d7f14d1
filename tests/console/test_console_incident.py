"""Acceptance: the incident, as an operator lives it in the console, on PostgreSQL.

A payment provider's outage dead-letters 300 charges. The operator opens the dead letters,
opens the one group they make, reads when the incident started and last struck, asks for a
redrive, reads the dry run, sets 50/s and a comment, starts it and watches the progress
panel reach done; all of it in at most 15 keystrokes, counted. Every run then completes,
no customer is charged twice, and each run's STEP_RETRIED carries the comment (law 7). The
panel survives leaving: `:operations` and enter open it again on the same operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.paged_table import PagedTable
from console.screens.dead_letter_group import GroupScreen
from console.screens.dead_letters import DeadLettersScreen
from console.screens.operations import OperationScreen, OperationsScreen
from console.screens.redrive import RedriveModal
from tests.console.console_support import SIZE, console, notifications, text_of, until
from tests.e2e_redrive.outage_api import OutagePaymentApi
from tests.e2e_redrive.redrive_support import (
    AMOUNT,
    REDRIVE_STEPS,
    dead_letter_outage,
    wait_statuses,
)
from tests.support.databases import fresh_database
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import events_of, history

COUNT = 300
MAX_KEYSTROKES = 15
COMMENT = "psp"


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """PostgreSQL: the incident is a production story (replaces the console's SQLite)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def payment_api() -> Iterator[OutagePaymentApi]:
    """A fake payment provider on a free local port, down until the test says it recovered."""
    api = OutagePaymentApi()
    try:
        yield api
    finally:
        api.close()


class CountedPilot:
    """The pilot, counting every key the operator presses."""

    def __init__(self, pilot: Pilot[None]) -> None:
        self.pilot = pilot
        self.keystrokes = 0

    async def press(self, *keys: str) -> None:
        self.keystrokes += len(keys)
        await self.pilot.press(*keys)


def test_the_incident_is_redriven_from_the_console_in_fifteen_keystrokes(
    control_plane: ControlPlane, worker: StartWorker, payment_api: OutagePaymentApi
) -> None:
    stub = control_plane.stub
    worker(REDRIVE_STEPS)
    runs = dead_letter_outage(stub, payment_api, "incident-checkout", COUNT)
    payment_api.recover()

    async def scenario() -> None:
        app = console(control_plane.address)
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            operator = CountedPilot(pilot)
            await operator.press("d")
            await until(pilot, lambda: isinstance(app.screen, DeadLettersScreen), "groups")
            groups = app.screen.query_one("#groups", PagedTable)
            await until(pilot, lambda: groups.keys, "the group listed")
            assert len(groups.keys) == 1, "one outage, one group"
            row = groups.table.cells(groups.keys[0])
            assert row[0] == str(COUNT) and row[3] == "key", row

            await operator.press("enter")
            await until(pilot, lambda: isinstance(app.screen, GroupScreen), "group opened")
            header = text_of(app, "#group")
            assert f"{COUNT} dead letters · PaymentUnavailable" in header, header
            assert "first seen 20" in header and "last seen 20" in header, header
            items = app.screen.query_one("#items", PagedTable)
            await until(pilot, lambda: items.keys, "its dead letters")
            count_line = str(items.query_one(".count", Static).content)
            assert f"100 of {COUNT} dead letters" in count_line, count_line

            await operator.press("R")
            await until(pilot, lambda: isinstance(app.screen, RedriveModal), "redrive dialog")
            modal = app.screen
            await until(pilot, lambda: "matched 300" in text_of(app, "#plan"), "the dry run")
            assert "to redrive 300 · unsafe (idempotency none) 0" in text_of(app, "#plan")
            await operator.press("5", "0")  # the rate field starts selected: typing replaces
            await until(pilot, lambda: "at 50/s: about 6s" in text_of(app, "#plan"), "at 50/s")
            await operator.press("tab", *COMMENT, "enter")
            await until(pilot, lambda: app.screen is not modal, "started")
            assert isinstance(app.screen, OperationScreen), type(app.screen)
            panel = app.screen
            operation_id = panel.operation_id

            def done() -> bool:
                return panel.operation is not None and panel.operation.done

            await until(pilot, done, "the progress panel reaches done", timeout=120.0)
            progress = text_of(app, "#progress")
            assert f"retried {COUNT} of {COUNT}" in progress, progress
            assert f"succeeded {COUNT} · failed again 0" in progress, progress
            assert f"comment: {COMMENT}" in progress and "DONE" in progress, progress
            assert operator.keystrokes <= MAX_KEYSTROKES, operator.keystrokes
            assert not [s for s in shown if "ERROR" in s.upper()], shown

            # The panel is the operation's, not the screen's: leave, come back, same numbers.
            await pilot.press("escape", "escape")
            await pilot.press("colon", *"operations", "enter")
            await until(pilot, lambda: isinstance(app.screen, OperationsScreen), "operations")
            listed = app.screen.query_one(PagedTable)
            await until(pilot, lambda: operation_id in listed.keys, "the operation listed")
            listed.table.move_cursor(row=listed.keys.index(operation_id))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, OperationScreen), "reopened")
            await until(
                pilot, lambda: f"succeeded {COUNT}" in text_of(app, "#progress"), "same counts"
            )

    asyncio.run(scenario())

    wait_statuses(stub, list(runs), "COMPLETED")
    charges = payment_api.charges()
    assert sorted(c["customer"] for c in charges) == sorted(runs.values()), "each once"
    assert all(payment_api.charged(customer) == AMOUNT for customer in runs.values())
    for run_id in runs:
        [retried] = events_of(history(stub, run_id), "STEP_RETRIED")
        assert retried.data["comment"] == COMMENT, retried.data
