"""SendEvent: deliver an event to every run waiting on (name, key); keep it when none is."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from controlplane import errors
from controlplane.dispatch import waiting
from controlplane.dispatch.operations.base import Operation
from controlplane.engine.events import EventReceived
from controlplane.engine.machine import NotWaiting
from controlplane.store.codec import dump_json, load_json, to_datetime
from controlplane.store.schema import events

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction


@dataclass(frozen=True)
class SentEvent:
    event_id: str
    delivered_to: list[str]
    stored: bool


@dataclass
class SendEvent(Operation):
    namespace: str
    event_name: str
    correlation_key: str
    payload: Any
    event_id: str
    # Who sent it (law 7): credited in the history of every run it reaches, now or later.
    principal: str = "system"
    # (run id, node id) of the waits found before locking; read again if the batch is retried.
    _waiters: list[tuple[str, str]] = field(default_factory=list, init=False, repr=False)

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        self._waiters = waiting.waiters(
            txn.connection, self.namespace, self.event_name, self.correlation_key
        )
        return [run_id for run_id, _ in self._waiters]

    def apply(self, txn: Transaction) -> SentEvent:
        c = txn.connection
        event_id = self.event_id or uuid.uuid4().hex
        if self.event_id:
            known = c.execute(
                select(
                    events.c.delivered_to,
                    events.c.event_name,
                    events.c.correlation_key,
                    events.c.payload,
                ).where(events.c.namespace == self.namespace, events.c.id == self.event_id)
            ).first()
            if known is not None:
                sent = (known.event_name, known.correlation_key, known.payload)
                if sent != (self.event_name, self.correlation_key, dump_json(self.payload)):
                    # A retry sends the same event: another under a used id is a client's bug,
                    # and answering it as delivered would hide that it was not.
                    raise errors.AlreadyExists(
                        f"event id {self.event_id!r} was sent before as another event "
                        f"({known.event_name} for {known.correlation_key!r}): a new event "
                        "needs a new id"
                    )
                earlier: list[str] = load_json(known.delivered_to) or []
                return SentEvent(event_id, earlier, not earlier)
        delivered: list[str] = []
        for run_id, node_id in self._waiters:
            if run_id not in txn.batch.runs:
                continue
            event = EventReceived(
                node_id,
                self.event_name,
                self.correlation_key,
                self.payload,
                event_id,
                txn.now,
                principal=self.principal,
            )
            try:
                txn.transition(run_id, event)
            except NotWaiting:
                continue  # the wait ended (timeout, cancel) since it was found
            delivered.append(run_id)
        c.execute(
            events.insert().values(
                namespace=self.namespace,
                id=event_id,
                event_name=self.event_name,
                correlation_key=self.correlation_key,
                payload=dump_json(self.payload),
                sent_by=self.principal,
                created_at=to_datetime(txn.now),
                expires_at=to_datetime(txn.now) + waiting.KEEP_EVENTS,
                delivered_to=dump_json(delivered) if delivered else None,
            )
        )
        return SentEvent(event_id, delivered, not delivered)
