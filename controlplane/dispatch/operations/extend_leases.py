"""A worker's heartbeat: its leases run on, and progress details are kept with the attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controlplane.dispatch.operations.base import Operation
from controlplane.store.heartbeats import HeartbeatDetails

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction


@dataclass
class ExtendLeases(Operation):
    task_ids: list[str]
    # The latest progress details of some of these tasks, by task id.
    details: dict[str, HeartbeatDetails] = field(default_factory=dict)

    def apply(self, txn: Transaction) -> None:
        # Extended together once the batch's expired leases are taken back: a lease that ran
        # out before its heartbeat was committed stays lost.
        txn.extend_leases(self.task_ids, self.details)
