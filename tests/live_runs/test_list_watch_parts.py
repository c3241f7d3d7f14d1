"""The parts of WatchRuns without a server: what a subscription keeps while its client reads
(one change per run, bounded), what the registry passes on (nothing twice, nothing older
than what was passed on), and what a stream tells (left_filter, the total, the counts by
status)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from surefoot.v1 import run_pb2

from controlplane.api.run_list_watch import PAGE_CHANGES, _FirstRead, _Table
from controlplane.dispatch import run_list_watches
from controlplane.dispatch.run_list_watches import (
    UNKNOWN,
    RunListWatches,
    RunSummary,
    SummaryChange,
)
from controlplane.store.run_queries import RunSelection
from tests.live_runs.live_support import counts_of

T = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def summary(run_id: str, status: str, seq: int, namespace: str = "default") -> RunSummary:
    return RunSummary(
        id=run_id,
        namespace=namespace,
        workflow_name="orders",
        workflow_version="1",
        status=status,
        request_id=None,
        created_at=T,
        updated_at=T,
        closed_at=None,
        last_error=None,
        current_node="charge",
        trace_id="0" * 32,
        waiting_for=None,
        waiting_since=None,
        last_seq=seq,
    )


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def settle(loop: asyncio.AbstractEventLoop) -> None:
    """Run what other threads scheduled on `loop` (the hand-overs)."""
    loop.run_until_complete(asyncio.sleep(0))


def test_a_subscription_keeps_one_change_per_run_the_oldest_before_the_newest_summary(
    loop: asyncio.AbstractEventLoop,
) -> None:
    lists = RunListWatches()
    watch = lists.subscribe(RunSelection("default", workflow_name="orders"), loop)
    lists.publish([SummaryChange(summary("r1", "RUNNING", 3), None)])
    lists.publish([SummaryChange(summary("r1", "WAITING", 5), "RUNNING")])
    lists.publish([SummaryChange(replace(summary("r2", "RUNNING", 2), workflow_name="x"), None)])
    settle(loop)

    changes, overflowed = watch.take()
    assert not overflowed and watch.woken.is_set()
    assert [(c.summary.id, c.summary.status, c.before) for c in changes] == [
        ("r1", "WAITING", None)
    ]
    assert watch.take() == ([], False)


def test_the_registry_passes_nothing_twice_nor_older_than_what_it_passed_on(
    loop: asyncio.AbstractEventLoop,
) -> None:
    lists = RunListWatches()
    watch = lists.subscribe(RunSelection("default"), loop)
    lists.publish([SummaryChange(summary("r1", "WAITING", 5), "RUNNING")])
    settle(loop)
    watch.take()
    # The same commit found again (a re-read), an older one arriving late, another namespace.
    lists.publish([SummaryChange(summary("r1", "WAITING", 5), UNKNOWN)])
    lists.publish([SummaryChange(summary("r1", "RUNNING", 3), None)])
    lists.publish([SummaryChange(summary("r9", "RUNNING", 1, namespace="other"), None)])
    # A newer one found by a re-read: its "before" is what the watchers were last told.
    lists.publish([SummaryChange(summary("r1", "COMPLETED", 8), UNKNOWN)])
    settle(loop)

    changes, _ = watch.take()
    assert [(c.summary.status, c.summary.last_seq, c.before) for c in changes] == [
        ("COMPLETED", 8, "WAITING")
    ]


def test_a_subscription_past_its_bound_drops_what_it_held_and_asks_for_a_resync(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_list_watches, "MAX_PENDING", 3)
    lists = RunListWatches()
    watch = lists.subscribe(RunSelection("default"), loop)
    lists.publish([SummaryChange(summary(f"r{n}", "RUNNING", 1), None) for n in range(5)])
    settle(loop)

    assert watch.take() == ([], True)
    lists.publish([SummaryChange(summary("r7", "RUNNING", 1), None)])
    settle(loop)
    changes, overflowed = watch.take()
    assert [c.summary.id for c in changes] == ["r7"] and not overflowed


def test_the_last_stream_of_a_namespace_takes_what_was_known_with_it(
    loop: asyncio.AbstractEventLoop,
) -> None:
    lists = RunListWatches()
    first = lists.subscribe(RunSelection("default"), loop)
    lists.publish([SummaryChange(summary("r1", "WAITING", 5), "RUNNING")])
    lists.unsubscribe(first)
    assert not lists.watching and lists.namespaces() == set()

    again = lists.subscribe(RunSelection("default"), loop)
    # Known no more: the run may have changed unseen meanwhile; the change's own "before".
    lists.publish([SummaryChange(summary("r1", "COMPLETED", 9), "FAILED")])
    settle(loop)
    assert [c.before for c in again.take()[0]] == ["FAILED"]


def test_a_table_tells_entries_changes_and_exits_with_the_total() -> None:
    table = _Table(RunSelection("default", statuses=("WAITING",)))
    table.total = 2
    later = table.after_first(
        [summary("shown", "WAITING", 4), summary("other", "WAITING", 2)],
        # Received while the first message was read: one it shows already, one newer.
        [
            SummaryChange(summary("shown", "WAITING", 4), "RUNNING"),
            SummaryChange(summary("other", "COMPLETED", 6), UNKNOWN),
        ],
    )
    assert [(c.summary.id, c.before) for c in later] == [("other", "WAITING")]
    messages = list(
        table.messages(
            [
                *later,
                SummaryChange(summary("new", "WAITING", 2), None),  # enters
                SummaryChange(summary("moved", "WAITING", 7), "WAITING"),  # stays
                SummaryChange(summary("never", "COMPLETED", 3), "RUNNING"),  # never matched
                SummaryChange(summary("found", "WAITING", 9), UNKNOWN),  # a re-read's
                SummaryChange(summary("new", "WAITING", 2), None),  # told already
            ]
        )
    )

    (message,) = messages
    told = [(c.run.id, c.left_filter) for c in message.changes]
    assert told == [("other", True), ("new", False), ("moved", False), ("found", False)]
    # 2 - other + new; "moved" and "found" were in already (as far as anyone knows).
    assert message.total == table.total == 2
    assert not message.initial
    assert not message.counts_by_status, "counts only for a client that asked"


def test_a_table_that_counts_moves_each_run_from_its_status_before_to_after() -> None:
    table = _Table(RunSelection("default", statuses=("WAITING",)))
    first = table.first_message(_FirstRead([summary("a", "WAITING", 2)], 1, None))
    assert first.initial and first.total == 1 and not first.counts_by_status
    # Read after the first message when statuses are filtered: every status, zeros too.
    table.counts = {"WAITING": 1, "COMPLETED": 4}
    counted = table.counts_message()
    assert not counted.changes and counts_of(counted) == {"WAITING": 1, "COMPLETED": 4}
    assert len(counted.counts_by_status) == len(run_pb2.RunStatus.keys()) - 1

    (message,) = table.messages(
        [
            SummaryChange(summary("a", "COMPLETED", 3), "WAITING"),  # leaves the filter
            SummaryChange(summary("b", "RUNNING", 1), None),  # a new run, not shown
            SummaryChange(summary("c", "FAILED", 5), UNKNOWN),  # a re-read's: no move
            SummaryChange(summary("d", "CANCELLED", 2), "FAILED"),  # from a count at 0
        ]
    )
    assert [(c.run.id, c.left_filter) for c in message.changes] == [("a", True)]
    assert message.total == 0
    assert counts_of(message) == {"COMPLETED": 5, "RUNNING": 1, "CANCELLED": 1}

    # Counts that move with no run to tell: a message without changes.
    (alone,) = table.messages([SummaryChange(summary("b", "COMPLETED", 2), "RUNNING")])
    assert not alone.changes and counts_of(alone) == {"COMPLETED": 6, "CANCELLED": 1}
    # Nothing moved and nothing to tell: no message.
    assert list(table.messages([SummaryChange(summary("e", "RUNNING", 1), UNKNOWN)])) == []


def test_a_burst_goes_out_in_messages_of_at_most_page_changes() -> None:
    table = _Table(RunSelection("default"))
    table.total = 0
    burst = [SummaryChange(summary(f"r{n}", "RUNNING", 1), None) for n in range(PAGE_CHANGES + 3)]
    messages = list(table.messages(burst))

    assert [len(m.changes) for m in messages] == [PAGE_CHANGES, 3]
    assert [m.total for m in messages] == [PAGE_CHANGES, PAGE_CHANGES + 3]
