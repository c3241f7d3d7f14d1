"""A decision that carries an output: the human review of an AI node.

The decision itself is `DecideApproval`'s (who may decide, what they were shown, separation
of duties); this adds the output to the engine event it makes, and turns the engine's refusal
of that output (missing, unexpected, or outside the node's schema) into INVALID_ARGUMENT.
The engine refuses before it changes the run, so a refused decision writes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from controlplane import errors
from controlplane.dispatch import operations as ops
from controlplane.engine.events import ApprovalDecided, RunEvent
from controlplane.engine.nodes import OutputRefused

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction


@dataclass
class DecideWithOutput(ops.DecideApproval):
    """DecideApproval with `output` (the request's decoded Payload, when it had one) handed
    to the engine, which says whether the approval takes one."""

    output: Any = None
    has_output: bool = False

    def apply(self, txn: Transaction) -> dict[str, Any]:
        wrapped = _WithOutput(txn, self.output, self.has_output)
        return super().apply(cast("Transaction", wrapped))


class _WithOutput:
    """The transaction as DecideApproval uses it, whose approval events carry the output."""

    def __init__(self, txn: Transaction, output: Any, has_output: bool) -> None:
        self._txn = txn
        self._output = output
        self._has_output = has_output

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)

    def transition(self, run_id: str, event: RunEvent) -> None:
        if isinstance(event, ApprovalDecided):
            event = dataclasses.replace(event, output=self._output, has_output=self._has_output)
        try:
            self._txn.transition(run_id, event)
        except OutputRefused as refused:
            raise errors.InvalidArgument.field(refused.field, refused.message) from None
