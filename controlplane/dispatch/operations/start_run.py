"""StartRun: a new run of a workflow, or the one its request id started before."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controlplane.dispatch.operations.base import Operation
from controlplane.dispatch.run_watches import RunWatches, Watch
from controlplane.dispatch.starts import StartedRun
from controlplane.engine.state import TERMINAL

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction


@dataclass
class StartRun(Operation):
    namespace: str
    workflow_name: str
    # "" or "latest" for the newest active version.
    workflow_version: str
    input: Any
    request_id: str
    principal: str
    # The caller waits for the run's end: the committer subscribes to its changes (`watch`)
    # right after the start commits.
    wait: bool = False
    watch: Watch | None = field(default=None, init=False, repr=False)
    _watches: RunWatches | None = field(default=None, init=False, repr=False)

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        # The batch's starts read their definitions and request ids together.
        txn.will_start(self)
        return ()

    def apply(self, txn: Transaction) -> StartedRun:
        return txn.starts.start(self)

    def follow(self, watches: RunWatches, started: StartedRun) -> None:
        """Subscribe the waiting caller to the run's changes (committer thread)."""
        if not self.wait or started.status in TERMINAL or self.future is None:
            return
        self._watches = watches
        self.watch = watches.subscribe(started.run_id, self.future.get_loop())

    def forget(self) -> None:
        """Drop the subscription (the caller's loop): the caller is done with it, or gone."""
        if self._watches is not None and self.watch is not None:
            self._watches.unsubscribe(self.watch.run_id, self.watch)
            self.watch = None

    def abandoned(self) -> None:
        self.forget()
