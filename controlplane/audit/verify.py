"""Recomputing a run's hash chain and naming the first event that does not verify.

Pure: it takes the run's history rows (in seq order) and what the run's row says of its end
(`last_seq`, `last_hash`), and reads nothing else. How a fault is named:

- EDITED: the event's content no longer matches its hash, while the next event still chains
  from that hash (or, for the last event, the run's row still names it): the hash is the
  original, the content is not. (One who rewrote the event before it together with its hash
  shows the same way, one event later: the detail says so.);
- INSERTED: an event the control plane did not write: past the run's recorded end, without
  a hash, or one whose hash does not chain from the event before it (inserted, replaced, or
  renumbered to hide a removal);
- DELETED: sequence numbers are missing (a gap, or the end cut off).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from controlplane.audit.chain import GENESIS, ChainedFields, row_hash


class Fault(StrEnum):
    EDITED = "edited"
    INSERTED = "inserted"
    DELETED = "deleted"


class HistoryRow(ChainedFields, Protocol):
    """A `history` row as verification reads it: the chained columns and the stored hash."""

    @property
    def hash(self) -> str: ...


@dataclass(frozen=True)
class Verdict:
    run_id: str
    # Events read and checked (all of them when the chain verifies).
    events: int
    # The hash of the run's last event: kept elsewhere, it shows a chain rewritten whole.
    head_hash: str
    fault: Fault | None = None
    # The first event that does not verify (for DELETED: the first missing seq).
    seq: int = 0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.fault is None


def verify_chain(run_id: str, rows: Sequence[HistoryRow], last_seq: int, last_hash: str) -> Verdict:
    """Whether `rows` (the run's history by seq) is the chain the control plane wrote."""
    previous = GENESIS
    expected = 1

    def fault(kind: Fault, seq: int, detail: str) -> Verdict:
        return Verdict(run_id, expected - 1, last_hash, kind, seq, detail)

    for index, row in enumerate(rows):
        if row.seq > last_seq:
            return fault(
                Fault.INSERTED,
                row.seq,
                f"event {row.seq} ({row.type}) is past the run's last recorded event {last_seq}",
            )
        if row.seq != expected:
            missing = f"{expected}" if row.seq == expected + 1 else f"{expected}-{row.seq - 1}"
            return fault(Fault.DELETED, expected, f"seq gap: event {missing} missing")
        if row_hash(previous, row) != row.hash:
            following = rows[index + 1] if index + 1 < len(rows) else None
            if not row.hash:
                return fault(Fault.INSERTED, row.seq, f"event {row.seq} ({row.type}) has no hash")
            if _still_chained(row, following, last_seq, last_hash):
                before = f", or event {row.seq - 1} rewritten with a new hash"
                return fault(
                    Fault.EDITED,
                    row.seq,
                    f"hash mismatch: event {row.seq} ({row.type}) does not match its hash "
                    f"(edited, or renumbered{before if row.seq > 1 else ''})",
                )
            return fault(
                Fault.INSERTED,
                row.seq,
                f"chain broken: event {row.seq} ({row.type}) does not follow from event "
                f"{row.seq - 1}",
            )
        previous = row.hash
        expected += 1
    if expected - 1 < last_seq:
        missing = f"{expected}" if expected == last_seq else f"{expected}-{last_seq}"
        return fault(Fault.DELETED, expected, f"event {missing} missing at the end")
    if previous != last_hash:
        return fault(
            Fault.EDITED,
            last_seq,
            f"the run's recorded last hash does not match event {last_seq}",
        )
    return Verdict(run_id, expected - 1, last_hash)


def _still_chained(
    row: HistoryRow, following: HistoryRow | None, last_seq: int, last_hash: str
) -> bool:
    """Whether what comes after `row` still vouches for its stored hash: then only the
    content changed (an edit), not the hash along with it."""
    if following is None:
        return row.seq == last_seq and row.hash == last_hash
    return following.seq == row.seq + 1 and row_hash(row.hash, following) == following.hash
