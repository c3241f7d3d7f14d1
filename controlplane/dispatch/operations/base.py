"""What every request to the committer is: an `Operation` applied in a group commit.

An operation is applied in three phases, each called once per transaction attempt (a batch
that fails is retried, so nothing here may assume it runs only once, except
`SessionChange`, which guards itself):

1. `run_ids(txn)`: the runs it must lock and load, returned, and any other reads it wants
   done for it before the runs are locked (task rows, the batch's starts), declared on `txn`;
2. `apply(txn)`: its effect, on runs the transaction has locked; returns its result (what
   the caller's future resolves to) or raises an `errors.Refusal`;
3. session changes only: `change_sessions`, their in-memory effect, before the transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controlplane import errors

if TYPE_CHECKING:
    from controlplane.dispatch.delivery import Handout
    from controlplane.dispatch.sessions import SessionRegistry
    from controlplane.dispatch.transaction import Transaction

# The refusals an operation may raise; `Conflict` is the dispatcher's older name.
NotFound = errors.NotFound
Conflict = errors.FailedPrecondition
PermissionDenied = errors.PermissionDenied


@dataclass
class Operation:
    future: asyncio.Future[Any] | None = field(default=None, init=False, repr=False)

    def change_sessions(self, sessions: SessionRegistry, handout: Handout) -> None:
        """The in-memory effect on worker sessions, before the transaction (none by default)."""

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        """The runs to lock and load for `apply`; declare other reads on `txn` here."""
        return ()

    def apply(self, txn: Transaction) -> Any:
        """The effect inside the transaction; returns what the caller is answered."""
        return None

    def abandoned(self) -> None:
        """The caller stopped waiting before the answer came (on its event loop)."""


@dataclass
class SessionChange(Operation):
    """A change to this process's worker sessions: made once, before the transaction."""

    # A retried batch must not redo it (a credit granted twice would overfill the worker).
    applied: bool = field(default=False, init=False, repr=False)

    def change_sessions(self, sessions: SessionRegistry, handout: Handout) -> None:
        if self.applied:
            return
        self.applied = True
        self.change(sessions, handout)

    def change(self, sessions: SessionRegistry, handout: Handout) -> None:
        raise NotImplementedError
