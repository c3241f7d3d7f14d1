"""How a WatchRun stream uses the news its wake-ups bring: as they are when they continue
from the last event sent, never when something is missing in between."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controlplane.api.run_watch import PAGE_EVENTS, _from_news
from controlplane.dispatch.run_watches import RunNews


def rows(*seqs: int) -> list[dict[str, Any]]:
    return [
        {
            "run_id": "r",
            "seq": seq,
            "type": "STEP_SCHEDULED",
            "time": datetime(2026, 1, 1, tzinfo=UTC),
            "node_id": "a",
            "attempt": 1,
            "principal": "system",
            "data": "{}",
            "hash": "",
        }
        for seq in seqs
    ]


def test_news_continuing_from_the_last_event_sent_are_the_tail() -> None:
    tail = _from_news([RunNews("RUNNING", 4, rows(3, 4)), RunNews("COMPLETED", 6, rows(5, 6))], 2)
    assert tail is not None
    assert [e.seq for e in tail.events] == [3, 4, 5, 6]
    assert (tail.status, tail.last_seq) == ("COMPLETED", 6)


def test_events_already_sent_are_left_out() -> None:
    tail = _from_news([RunNews("RUNNING", 5, rows(3, 4, 5))], 4)
    assert tail is not None and [e.seq for e in tail.events] == [5]
    nothing_new = _from_news([RunNews("RUNNING", 5, rows(4, 5))], 5)
    assert nothing_new is not None and list(nothing_new.events) == []


def test_a_gap_or_no_news_means_a_read() -> None:
    assert _from_news([], 2) is None
    # Seq 3 was committed elsewhere (another control plane): it must be read.
    assert _from_news([RunNews("RUNNING", 5, rows(4, 5))], 2) is None
    # The run's last seq is past the rows handed over.
    assert _from_news([RunNews("RUNNING", 7, rows(3, 4))], 2) is None


def test_more_than_a_page_is_read_in_pages() -> None:
    many = rows(*range(1, PAGE_EVENTS + 2))
    assert _from_news([RunNews("RUNNING", PAGE_EVENTS + 1, many)], 0) is None
