"""The runs table's values without a terminal or a server: the `/` filter with its run terms,
the RunFilter sent, refusals in one line, rows at both widths, order, counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import timestamp_pb2
from surefoot.v1 import run_pb2

from console.runs_view import (
    count_line,
    counts_line,
    parse_runs_filter,
    run_row,
    sorted_runs,
)

T0 = 1_790_000_000  # 2026-09-21T14:13:20Z


def test_the_filter_sends_status_workflow_id_prefix_and_time_to_the_server() -> None:
    typed = (
        "acme status:waiting,needs_attention workflow:checkout@2 id:1F3A until:2026-09-01T00:00Z"
    )
    parsed = parse_runs_filter(typed)
    sent = parsed.run_filter()
    assert list(sent.statuses) == [run_pb2.RUN_STATUS_WAITING, run_pb2.RUN_STATUS_NEEDS_ATTENTION]
    assert (sent.workflow_name, sent.workflow_version) == ("checkout", "2")
    assert sent.run_id_prefix == "1f3a"
    # A time without an offset is UTC.
    assert sent.created_before.ToDatetime(tzinfo=UTC) == datetime(2026, 9, 1, tzinfo=UTC)
    assert not sent.HasField("created_after")
    assert parsed.query.text == "acme" and parsed.selects
    # What `/` shows again is what was typed, term by term.
    assert parse_runs_filter(str(parsed)) == parsed

    recent = parse_runs_filter("since:2h").run_filter()
    age = datetime.now(UTC) - recent.created_after.ToDatetime(tzinfo=UTC)
    assert 7190 < age.total_seconds() < 7210
    assert not parse_runs_filter("only words").selects


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("since:", "since: needs a value"),
        ("id:", "id: needs a value"),
        ("since:yesterday", "since:yesterday: 'yesterday' is neither an age"),
        ("status:sleeping", "status:sleeping is none of RUNNING"),
        ("status:", "status: needs a value"),
    ],
)
def test_a_filter_that_cannot_be_sent_is_refused_in_one_line(typed: str, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_runs_filter(typed)
    assert str(refused.value).startswith(says), refused.value
    assert "\n" not in str(refused.value)


def run(index: int, status: str, workflow: str = "checkout") -> run_pb2.Run:
    return run_pb2.Run(
        id=f"{index:04x}beef-0000-4000-8000-000000000000",
        workflow_name=workflow,
        workflow_version="1",
        status=run_pb2.RunStatus.Value(f"RUN_STATUS_{status}"),
        created_at=timestamp_pb2.Timestamp(seconds=T0 + index * 60),
        updated_at=timestamp_pb2.Timestamp(seconds=T0 + 1000 - index),
        waiting_for="approval 'Ship it?' " + "x" * 80 if status == "WAITING" else "",
    )


def test_rows_fit_80_columns_narrow_and_say_everything_wide() -> None:
    waiting = run(1, "WAITING")
    narrow = run_row(waiting, wide=False, marked=True, width=20)
    assert narrow == ("●", "0001beef", "checkout@1", "WAITING", "09-21 14:29", narrow[-1])
    assert len(narrow[-1]) == 20 and narrow[-1].endswith("…")
    wide = run_row(waiting, wide=True, marked=False)
    assert wide[:5] == (" ", waiting.id, "checkout@1", "WAITING", "2026-09-21 14:14:20")


def test_runs_sort_by_any_column_either_way() -> None:
    runs = [run(1, "COMPLETED", "b"), run(2, "RUNNING", "a"), run(3, "WAITING", "c")]
    assert [r.id[:4] for r in sorted_runs(runs, "created", True)] == ["0003", "0002", "0001"]
    assert [r.id[:4] for r in sorted_runs(runs, "updated", True)] == ["0001", "0002", "0003"]
    assert [r.workflow_name for r in sorted_runs(runs, "workflow", False)] == ["a", "b", "c"]
    # Status in the lifecycle's order: running, waiting, ..., completed.
    by_status = [r.id[:4] for r in sorted_runs(runs, "status", False)]
    assert by_status == ["0002", "0003", "0001"]


def test_counts_leave_out_empty_statuses_and_the_count_line_says_what_is_loaded() -> None:
    line = counts_line({"RUNNING": 3, "WAITING": 0, "NEEDS_ATTENTION": 1200}, 1203)
    assert line.plain == "running 3 · needs attention 1,200  total 1,203"
    assert counts_line({}, None).plain == "counting…"
    assert count_line(200, 200, 8000, 0, "live") == "200 of 8,000 runs · live · PgDn loads more"
    assert count_line(3, 12, 12, 2, "live") == "3 shown · 12 of 12 runs · live · 2 marked (space)"
