"""An operation a caller named with a request id: applied once, answered the same every time.

`Once` wraps the operation a write RPC submits. In its transaction it looks for the answer
kept under the request id (store/write_requests.py): found, the operation is not applied and
the caller gets `Repeated` with the first answer; not found, the operation is applied and its
answer is kept by the same transaction, so the answer exists exactly when the write does.
The same id twice in one batch is answered once too (`Transaction.once`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controlplane.dispatch.operations.base import Operation
from controlplane.store.write_requests import RequestKey

if TYPE_CHECKING:
    from controlplane.dispatch.delivery import Handout
    from controlplane.dispatch.sessions import SessionRegistry
    from controlplane.dispatch.transaction import Transaction


@dataclass(frozen=True)
class Repeated:
    """The request id was answered before: `response` is that answer, serialized."""

    response: bytes


@dataclass
class Once(Operation):
    inner: Operation
    key: RequestKey
    # The inner operation's result as the serialized response message; called in the
    # transaction after its writes (read-backs done), on the committer's thread.
    render: Callable[[Any], bytes]

    def change_sessions(self, sessions: SessionRegistry, handout: Handout) -> None:
        self.inner.change_sessions(sessions, handout)

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        # Locked even when the id turns out answered: a repeat is rare, the lock is cheap, and
        # it orders this call after a first one that is committing on another control plane.
        return self.inner.run_ids(txn)

    def apply(self, txn: Transaction) -> Any:
        return txn.once(self.key, lambda: self.inner.apply(txn), self.render)

    def abandoned(self) -> None:
        self.inner.abandoned()
