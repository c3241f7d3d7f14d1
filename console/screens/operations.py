"""Operations (redrives, bulk run actions): the list, and one operation's live progress.

An operation is rows in the database, so its panel can be left and opened again at any time
(`:operations`, enter): the panel follows WatchOperation, which sends the operation now and
again at each change of its counts, and reconnects when the stream breaks.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc
from surefoot.v1 import operation_service_pb2 as opb
from textual.app import ComposeResult
from textual.widgets import Static

from console import keys
from console.client import ControlPlane
from console.footer import KeyFooter
from console.modals import CommentModal, ConfirmModal
from console.paged_table import PagedTable
from console.render_incident import (
    OPERATION_COLUMNS,
    operation_progress,
    operation_row,
)
from console.screens.polling import ConnectionLine, PollingScreen

# How long the panel waits before watching again after the stream broke.
RECONNECT_SECONDS = 1.0


class OperationsScreen(PollingScreen):
    """Every operation of the namespace, newest first; enter opens its progress."""

    BINDINGS = keys.bindings("operations.open")

    def compose(self) -> ComposeResult:
        yield ConnectionLine(id="connection")
        yield PagedTable(
            OPERATION_COLUMNS,
            self.control_plane.list_operations,
            key=lambda operation: operation.id,
            row=operation_row,
            noun="operations",
            id="operations",
        )
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "operations"
        self.query_one(PagedTable).focus()
        super().on_mount()

    async def poll(self) -> None:
        await self.attempt(self.query_one(PagedTable).reload(), polling=True)

    def apply_query(self, query: Any) -> None:
        self.query_one(PagedTable).set_text_filter(query)

    def action_open(self) -> None:
        table: PagedTable[opb.Operation] = self.query_one(PagedTable)
        operation = table.selected_item
        if operation is None:
            self.say("no operation selected", severity="warning")
            return
        self.app.push_screen(OperationScreen(self.control_plane, operation.id))


class OperationScreen(PollingScreen):
    """The live progress panel of one operation; `c` cancels what is not retried yet."""

    BINDINGS = keys.bindings("operation.cancel")
    DEFAULT_CSS = """
    OperationScreen #progress { height: auto; padding: 1 2; }
    OperationScreen #watch { height: 1; padding: 0 2; color: $text-muted; }
    """

    def __init__(self, control_plane: ControlPlane, operation_id: str) -> None:
        super().__init__(control_plane)
        self.operation_id = operation_id
        self.operation: opb.Operation | None = None
        self.live = False
        self._stop = threading.Event()
        self._call: Any = None

    def compose(self) -> ComposeResult:
        yield ConnectionLine(id="connection")
        yield Static("loading…", id="progress", markup=False)
        yield Static("", id="watch", markup=False)
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"operation {self.operation_id}"
        super().on_mount()
        self.run_worker(self._watch, thread=True, group="watch")

    def on_unmount(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()

    async def poll(self) -> None:
        # The stream carries the changes; a read is for the first paint and while the stream
        # is down (it says so under the panel).
        if self.operation is not None and (self.live or self.operation.done):
            return
        operation = await self.attempt(
            self.control_plane.get_operation(self.operation_id), polling=True
        )
        if operation is not None:
            self.show_operation(operation)

    def _watch(self) -> None:
        """In a thread: WatchOperation until the operation is done or the screen closes."""
        while not self._stop.is_set():
            self._call = self.control_plane.watch_operation(self.operation_id)
            try:
                for answer in self._call:
                    self.live = True
                    self.app.call_from_thread(self.show_operation, answer.operation)
                    if answer.operation.done:
                        return
                return
            except grpc.RpcError:
                self.live = False
                if self._stop.is_set():
                    return
                self.app.call_from_thread(self._say_watch, "stream lost: reconnecting…")
                self._stop.wait(RECONNECT_SECONDS)
            finally:
                self.live = False

    def _say_watch(self, text: str) -> None:
        for line in self.query("#watch").results(Static):
            line.update(text)

    def show_operation(self, operation: opb.Operation) -> None:
        self.operation = operation
        # An answer may land while the screen is being taken down (or not yet composed): its
        # widgets are then gone, and there is nothing to paint.
        progress = self.query("#progress").results(Static)
        watch_line = self.query("#watch").results(Static)
        watch = "done" if operation.done else ("live" if self.live else "polling")
        for panel in progress:
            panel.update(operation_progress(operation))
        for line in watch_line:
            line.update(f"({watch} · esc leaves, it goes on)")

    def action_cancel_operation(self) -> None:
        operation = self.operation
        if operation is None or operation.done:
            self.say("nothing left to cancel", severity="warning")
            return

        async def cancel(reason: str | None) -> None:
            if reason is None:
                return
            cancelled = await self.attempt(
                self.control_plane.cancel_operation(operation.id, reason)
            )
            if cancelled is not None:
                self.show_operation(cancelled)
                self.say(f"cancelled {operation.id}: items not retried yet are dropped")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.app.push_screen(CommentModal(f"Cancel {operation.id}: reason"), cancel)

        question = (
            f"Cancel {operation.kind} {operation.id}? Items not retried yet are dropped; "
            "those retried are still followed."
        )
        self.app.push_screen(ConfirmModal(question), confirmed)
