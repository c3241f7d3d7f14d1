"""Cancels that another control plane sent for attempts held by streams of this one.

When a control plane takes back a lease (it ran out, the attempt timed out, the run ended)
whose stream is connected to another control plane, it cannot message that worker itself;
it notifies `wakeups.CANCELS_CHANNEL`, and the control plane holding the stream posts this
operation, which sends the Cancels as if it had taken the leases back itself (law 9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane.dispatch.operations.base import Operation

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction


@dataclass
class CancelHeldTasks(Operation):
    """Tell the workers holding these tasks here to stop them (task id -> reason)."""

    reasons: dict[str, str]

    def apply(self, txn: Transaction) -> None:
        # Nothing to write: the other control plane recorded the lost attempts. `deliver`
        # sends a Cancel for each task a stream here still holds, and skips the others.
        txn.out.cancels.extend(self.reasons)
        txn.out.cancel_reasons.update(self.reasons)
