"""What the live runs tests share: a WatchRuns stream read in a thread, runs that wait for
events the test sends (so that the test commits each change itself), and the table a
client builds from the stream."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from surefoot.v1 import run_pb2, workflow_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from tests.api.watch_support import GatedRun, start_gated_run
from tests.support.eventually import assert_eventually

Stub = workflow_service_pb2_grpc.WorkflowServiceStub
Metadata = tuple[tuple[str, str], ...]
STREAM_TIMEOUT = 120.0
WAITING = run_pb2.RUN_STATUS_WAITING
COMPLETED = run_pb2.RUN_STATUS_COMPLETED


@dataclass
class RunsStream:
    """A WatchRuns call whose messages a thread collects; `table()` is what a client holds."""

    call: grpc.CallIterator[ws.WatchRunsResponse]
    messages: list[ws.WatchRunsResponse] = field(default_factory=list)
    error: grpc.RpcError | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _read(self) -> None:
        try:
            for message in self.call:
                with self._lock:
                    self.messages.append(message)
        except grpc.RpcError as exc:
            with self._lock:
                self.error = exc

    def received(self) -> list[ws.WatchRunsResponse]:
        with self._lock:
            return list(self.messages)

    def first(self) -> ws.WatchRunsResponse:
        """The first message, once it is here (the stream is subscribed from then on)."""
        return assert_eventually(
            lambda: self.received()[0] if self.received() else self._failed(),
            message="the first WatchRuns message",
        )

    def _failed(self) -> None:
        assert self.error is None, f"the stream failed: {self.error}"

    def changes(self) -> list[ws.RunChange]:
        """Every change after the first message, in order."""
        return [c for m in self.received()[1:] for c in m.changes]

    def table(self) -> dict[str, run_pb2.Run]:
        """The runs a client applying every message holds: an `initial` message replaces
        them all, a change updates its run, `left_filter` removes it."""
        rows: dict[str, run_pb2.Run] = {}
        for message in self.received():
            if message.initial:
                rows = {}
            for change in message.changes:
                if change.left_filter:
                    rows.pop(change.run.id, None)
                else:
                    rows[change.run.id] = change.run
        return rows

    def total(self) -> int:
        received = self.received()
        return received[-1].total if received else -1

    def counts(self) -> dict[str, int] | None:
        """The counts by status of the last message that had them (statuses with none
        left out); None before any did."""
        for message in reversed(self.received()):
            if message.counts_by_status:
                return counts_of(message)
        return None

    def wait_for(self, run_id: str, status: run_pb2.RunStatus.ValueType) -> run_pb2.Run:
        """The run as the stream last told it, once it is in `status`."""

        def arrived() -> run_pb2.Run | None:
            self._failed()
            found = [c.run for c in self.changes() if c.run.id == run_id]
            return found[-1] if found and found[-1].status == status else None

        return assert_eventually(arrived, message=f"run {run_id} in status {status}")

    def cancel(self) -> None:
        self.call.cancel()


def watch_runs(
    stub: Stub,
    namespace: str = "",
    metadata: Metadata = (),
    initial_limit: int = 0,
    count_by_status: bool = False,
    **filters: Any,
) -> RunsStream:
    """A WatchRuns stream, read in a daemon thread until cancelled."""
    request = ws.WatchRunsRequest(
        namespace=namespace,
        filter=ws.RunFilter(**filters),
        initial_limit=initial_limit,
        count_by_status=count_by_status,
    )
    stream = RunsStream(stub.WatchRuns(request, timeout=STREAM_TIMEOUT, metadata=metadata))
    threading.Thread(target=stream._read, daemon=True).start()
    return stream


def gated_runs(stub: Stub, count: int, namespace: str = "") -> list[GatedRun]:
    """`count` runs waiting for their first event, oldest first."""
    return [start_gated_run(stub, namespace) for _ in range(count)]


def ids(runs: Iterable[run_pb2.Run]) -> list[str]:
    return [run.id for run in runs]


def counts_of(message: ws.WatchRunsResponse) -> dict[str, int]:
    """A message's counts by status (`WAITING`), those with none left out."""
    return {
        run_pb2.RunStatus.Name(c.status).removeprefix("RUN_STATUS_"): c.count
        for c in message.counts_by_status
        if c.count
    }
