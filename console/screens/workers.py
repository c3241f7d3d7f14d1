"""Workers: the streams connected to any control plane, and the queues nobody serves.

The queues come first: a step type with tasks waiting and no capable worker is an outage in
the making ("NONE: stuck"), whatever the list of workers below looks like.
"""

from __future__ import annotations

from surefoot.v1 import worker_admin_service_pb2 as wpb
from textual.app import ComposeResult
from textual.widgets import Static

from console.client import ControlPlane
from console.filtering import Query
from console.footer import KeyFooter
from console.live_table import LiveTable
from console.paged_table import PagedTable
from console.render_fleet import (
    QUEUE_COLUMNS,
    WORKER_COLUMNS,
    queue_key,
    queue_row,
    worker_row,
)
from console.screens.polling import ConnectionLine, PollingScreen


class WorkersScreen(PollingScreen):
    DEFAULT_CSS = """
    WorkersScreen .caption { height: 1; padding: 0 1; color: $text-muted; }
    WorkersScreen #queues { height: auto; max-height: 35%; }
    WorkersScreen #queues-note.stuck { color: $error; text-style: bold; }
    """

    def __init__(self, control_plane: ControlPlane) -> None:
        super().__init__(control_plane)
        self.queued: list[wpb.QueuedStepType] = []

    def compose(self) -> ComposeResult:
        yield ConnectionLine(id="connection")
        yield Static("queued step types", id="queues-note", classes="caption", markup=False)
        yield LiveTable(QUEUE_COLUMNS, id="queues")
        yield Static("connected workers", classes="caption")
        yield PagedTable(
            WORKER_COLUMNS,
            self.control_plane.list_workers,
            key=lambda worker: worker.session_id,
            row=worker_row,
            noun="workers",
            id="workers",
        )
        yield KeyFooter(compact=True)

    @property
    def worker_table(self) -> PagedTable[wpb.ConnectedWorker]:
        return self.query_one("#workers", PagedTable)

    def on_mount(self) -> None:
        self.sub_title = "workers"
        self.worker_table.focus()
        super().on_mount()

    async def poll(self) -> None:
        queued = await self.attempt(self.control_plane.queued_step_types(), polling=True)
        if queued is not None:
            self.queued = queued
            self.query_one("#queues", LiveTable).show(
                [(queue_key(q), queue_row(q)) for q in queued]
            )
            stuck = [q for q in queued if q.capable_workers == 0]
            note = self.query_one("#queues-note", Static)
            if stuck:
                names = ", ".join(queue_key(q) for q in stuck)
                note.update(f"queued with NO capable worker: {names}")
            elif queued:
                note.update("queued step types (each has a capable worker)")
            else:
                note.update("no task waits for a worker")
            note.set_class(bool(stuck), "stuck")
        await self.attempt(self.worker_table.reload(), polling=True)

    def apply_query(self, query: Query) -> None:
        self.worker_table.set_text_filter(query)
