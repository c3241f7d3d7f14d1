"""The verdict on a run's chain, from rows alone: each way of altering history is named at
the first event it touches, however the one who altered it went about it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.audit.chain import GENESIS, row_hash
from controlplane.audit.verify import Fault, Verdict, verify_chain

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
RUN = "0b4f6c1e-0000-4000-8000-000000000001"


@dataclass(frozen=True)
class Row:
    run_id: str
    seq: int
    type: str
    time: datetime
    node_id: str
    attempt: int
    principal: str
    data: str
    hash: str


def chained(rows: list[Row], start: str = GENESIS) -> list[Row]:
    """`rows` with the hashes the control plane would have written."""
    out, previous = [], start
    for row in rows:
        previous = row_hash(previous, row)
        out.append(dataclasses.replace(row, hash=previous))
    return out


def history(n: int = 6) -> list[Row]:
    kinds = ["RUN_STARTED", "STEP_SCHEDULED", "ATTEMPT_STARTED", "ATTEMPT_COMPLETED"]
    rows = [
        Row(RUN, seq, kinds[(seq - 1) % 4], T0 + timedelta(seconds=seq), "n", 1, "w", "{}", "")
        for seq in range(1, n + 1)
    ]
    return chained(rows)


def verdict(rows: list[Row], last_seq: int, last_hash: str) -> Verdict:
    return verify_chain(RUN, rows, last_seq, last_hash)


def test_the_chain_the_control_plane_wrote_verifies() -> None:
    rows = history()
    found = verdict(rows, 6, rows[-1].hash)
    assert found.ok and found.events == 6 and found.head_hash == rows[-1].hash


def test_every_field_is_covered_by_the_hash() -> None:
    rows = history()
    changes: dict[str, Any] = {
        "type": "RUN_COMPLETED",
        "time": T0 + timedelta(microseconds=1),
        "node_id": "m",
        "attempt": 2,
        "principal": "mallory",
        "data": '{"amount": 1}',
    }
    for name, value in changes.items():
        altered = [*rows[:2], dataclasses.replace(rows[2], **{name: value}), *rows[3:]]
        found = verdict(altered, 6, rows[-1].hash)
        assert (found.fault, found.seq) == (Fault.EDITED, 3), name


def test_an_edited_event_is_named_edited_even_when_it_is_the_last() -> None:
    rows = history()
    altered = [*rows[:5], dataclasses.replace(rows[5], data='{"forged": true}')]
    found = verdict(altered, 6, rows[-1].hash)
    assert (found.fault, found.seq, found.events) == (Fault.EDITED, 6, 5)
    assert "hash mismatch" in found.detail


def test_an_event_rewritten_with_a_fresh_hash_breaks_the_chain_after_it() -> None:
    rows = history()
    # Whoever edits event 3 and recomputes its hash leaves event 4 chained to the old one.
    forged = chained([dataclasses.replace(rows[2], data='{"forged": 1}')], rows[1].hash)
    altered = [*rows[:2], *forged, *rows[3:]]
    found = verdict(altered, 6, rows[-1].hash)
    assert (found.fault, found.seq) == (Fault.EDITED, 4)
    assert "or event 3 rewritten with a new hash" in found.detail


def test_events_rewritten_with_fresh_hashes_break_the_chain_where_they_end() -> None:
    rows = history()
    # Events 3 and 4 replaced by two others, chained from event 2: event 5 no longer follows.
    forged = chained([dataclasses.replace(r, principal="mallory") for r in rows[2:4]], rows[1].hash)
    altered = [*rows[:2], *forged, *rows[4:]]
    found = verdict(altered, 6, rows[-1].hash)
    assert (found.fault, found.seq) == (Fault.EDITED, 5)


def test_a_deleted_event_is_a_gap_and_a_cut_end_is_missing() -> None:
    rows = history()
    gap = verdict([*rows[:3], *rows[4:]], 6, rows[-1].hash)
    assert (gap.fault, gap.seq) == (Fault.DELETED, 4)
    assert "seq gap" in gap.detail
    cut = verdict(rows[:4], 6, rows[-1].hash)
    assert (cut.fault, cut.seq) == (Fault.DELETED, 5)
    assert "5-6 missing" in cut.detail


def test_a_removal_hidden_by_renumbering_breaks_the_chain() -> None:
    rows = history()
    # Event 5 deleted, event 6 renumbered 5 and the run's row told it has 5 events.
    found = verdict([*rows[:4], dataclasses.replace(rows[5], seq=5)], 5, rows[-1].hash)
    assert (found.fault, found.seq) == (Fault.EDITED, 5)
    assert "renumbered" in found.detail
    # The same in the middle of a longer history: what follows no longer chains either.
    longer = history(8)
    moved = [dataclasses.replace(r, seq=r.seq - 1) for r in longer[4:]]
    found = verdict([*longer[:3], *moved], 7, longer[-1].hash)
    assert (found.fault, found.seq) == (Fault.INSERTED, 4)
    assert "chain broken" in found.detail


def test_an_event_appended_by_hand_is_inserted_even_with_a_correct_hash() -> None:
    rows = history()
    extra = Row(RUN, 7, "RUN_COMPLETED", T0 + timedelta(seconds=9), "", 0, "system", "{}", "")
    appended = chained([extra], rows[-1].hash)
    found = verdict([*rows, *appended], 6, rows[-1].hash)
    assert (found.fault, found.seq) == (Fault.INSERTED, 7)
    assert "past the run's last recorded event 6" in found.detail


def test_an_event_without_a_hash_was_not_written_by_the_control_plane() -> None:
    rows = history()
    found = verdict([*rows[:5], dataclasses.replace(rows[5], hash="")], 6, rows[-1].hash)
    assert (found.fault, found.seq) == (Fault.INSERTED, 6)


def test_a_run_row_that_names_another_head_does_not_verify() -> None:
    rows = history()
    found = verdict(rows, 6, "0" * 64)
    assert found.fault == Fault.EDITED and found.seq == 6


def test_a_run_without_events_verifies_when_its_row_says_so() -> None:
    assert verdict([], 0, GENESIS).ok
    assert verdict([], 2, GENESIS).fault == Fault.DELETED
