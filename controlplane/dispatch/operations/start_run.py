"""StartRun: a new run of a workflow, or the one its request id started before."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controlplane.dispatch.operations.base import Operation
from controlplane.dispatch.starts import StartedRun

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

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        # The batch's starts read their definitions and request ids together.
        txn.will_start(self)
        return ()

    def apply(self, txn: Transaction) -> StartedRun:
        return txn.starts.start(self)
