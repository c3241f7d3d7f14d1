"""The hash chain of a run's history: each event's hash covers the hash of the one before it.

    hash(event) = sha256("surefoot.history.v1" || field || field || ...)

over, in this order: the previous event's hash (hex; "" for the run's first event), run id,
seq, type, time (integer microseconds since the Unix epoch, UTC), node id, attempt,
principal and data (the JSON text exactly as stored). Every field is UTF-8, integers in
decimal, each preceded by its length in bytes as 8 big-endian bytes, so no two different
events encode alike. The result is stored as 64 lowercase hex digits. Anyone can recompute
a chain from the `history` table alone; `audit verify` does.

An edited, inserted or deleted event then breaks the chain at that event. The run's row keeps
the hash of its last event too (`runs.last_hash`), so events removed from or added to the
end show as well.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Protocol

_DOMAIN = b"surefoot.history.v1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# The "previous hash" of a run's first event.
GENESIS = ""


def microseconds(moment: datetime) -> int:
    """A stored timestamp as an exact integer: what both databases keep is microseconds."""
    return (moment - _EPOCH) // _MICROSECOND


def event_hash(
    previous: str,
    run_id: str,
    seq: int,
    type: str,
    time: datetime,
    node_id: str,
    attempt: int,
    principal: str,
    data: str,
) -> str:
    """The hash of one history event chained to `previous`, the hash of the event before."""
    parts = [_DOMAIN]
    for field in (
        previous,
        run_id,
        str(seq),
        type,
        str(microseconds(time)),
        node_id,
        str(attempt),
        principal,
        data,
    ):
        raw = field.encode()
        parts.append(len(raw).to_bytes(8, "big"))
        parts.append(raw)
    return sha256(b"".join(parts)).hexdigest()


class ChainedFields(Protocol):
    """The columns of a `history` row the chain covers."""

    @property
    def run_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def node_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def principal(self) -> str: ...
    @property
    def data(self) -> str: ...


def row_hash(previous: str, row: ChainedFields) -> str:
    """`event_hash` of a stored history row (or anything with its columns)."""
    return event_hash(
        previous,
        row.run_id,
        row.seq,
        row.type,
        row.time,
        row.node_id,
        row.attempt,
        row.principal,
        row.data,
    )
