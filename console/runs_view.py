"""The runs table as values: the filter typed after `/`, the rows, their order, the counts.

Pure functions of messages and text, so what the Runs screen shows is tested without a
terminal or a server. The filter is lane-wide `/` syntax (console/filtering.py: free text,
`status:`, `workflow:`) plus the terms only runs have:

    /status:waiting workflow:checkout@2 id:1f3a since:2h until:2026-12-01T00:00Z

`id:` is a run id prefix (4 characters at least), `since:` and `until:` an age (90s, 15m,
2h, 7d) or a time (RFC 3339; UTC without an offset), as `surefoot runs list` takes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf import timestamp_pb2
from rich.text import Text
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from console.filtering import Query, parse_query
from controlplane.cli.run_listing import point_in_time

RUN_TERMS = ("id", "since", "until")
STATUSES = tuple(
    name.removeprefix("RUN_STATUS_")
    for name in run_pb2.RunStatus.keys()  # noqa: SIM118 (an enum wrapper, not a dict)
    if name != "RUN_STATUS_UNSPECIFIED"
)
STATUS_STYLES = {
    "RUNNING": "cyan",
    "WAITING": "magenta",
    "NEEDS_ATTENTION": "bold red",
    "COMPENSATING": "yellow",
    "COMPLETED": "green",
    "FAILED": "red",
    "COMPENSATED": "blue",
    "CANCELLED": "bright_black",
}
# Sortable columns: name -> what of a run it sorts by.
SORTS = ("created", "updated", "status", "workflow", "id")
MARK = "●"
# Narrower than this, a run id shows as its first characters (enough to tell runs apart,
# and what `id:` takes) and times as the time of day.
WIDE_COLUMNS = 120
SHORT_ID = 8


@dataclass(frozen=True)
class RunsFilter:
    """What the server is asked for, and the free text matched against the rows shown."""

    query: Query = field(default_factory=Query)
    id_prefix: str = ""
    since: str = ""
    until: str = ""

    @property
    def empty(self) -> bool:
        return self.query.empty and not (self.id_prefix or self.since or self.until)

    @property
    def selects(self) -> bool:
        """Whether it narrows the runs on the server (free text does not)."""
        q = self.query
        return bool(q.statuses or q.workflow or self.id_prefix or self.since or self.until)

    def run_filter(self) -> ws.RunFilter:
        """The RunFilter of WatchRuns, ListRuns and StartRunAction.

        Raises:
            ValueError: a status that does not exist, or an age or time that is neither.
        """
        for status in self.query.statuses:
            if status not in STATUSES:
                raise ValueError(f"status:{status.lower()} is none of {', '.join(STATUSES)}")
        found = ws.RunFilter(
            workflow_name=self.query.workflow_name,
            workflow_version=self.query.workflow_version,
            statuses=[run_pb2.RunStatus.Value(f"RUN_STATUS_{s}") for s in self.query.statuses],
            run_id_prefix=self.id_prefix,
        )
        if self.since:
            found.created_after.CopyFrom(_moment("since", self.since))
        if self.until:
            found.created_before.CopyFrom(_moment("until", self.until))
        return found

    def __str__(self) -> str:
        parts = [str(self.query)] if not self.query.empty else []
        for term, value in (("id", self.id_prefix), ("since", self.since), ("until", self.until)):
            if value:
                parts.append(f"{term}:{value}")
        return " ".join(parts)


def _moment(term: str, text: str) -> timestamp_pb2.Timestamp:
    try:
        return point_in_time(text)
    except Exception as exc:  # argparse.ArgumentTypeError: its message is for a person
        raise ValueError(f"{term}:{text}: {exc}") from None


def parse_runs_filter(typed: str) -> RunsFilter:
    """The filter typed after `/` on the runs screen.

    Raises:
        ValueError: a term without a value, or a value that is not one.
    """
    rest: list[str] = []
    found: dict[str, str] = {}
    for word in typed.split():
        term, colon, value = word.partition(":")
        if colon and term.lower() in RUN_TERMS:
            if not value:
                raise ValueError(f"{term}: needs a value, e.g. {term}:{_EXAMPLES[term.lower()]}")
            found[term.lower()] = value
        else:
            rest.append(word)
    runs_filter = RunsFilter(
        parse_query(" ".join(rest)),
        found.get("id", "").lower(),
        found.get("since", ""),
        found.get("until", ""),
    )
    runs_filter.run_filter()  # refused now, while the operator still sees what was typed
    return runs_filter


_EXAMPLES = {"id": "1f3a", "since": "2h", "until": "2026-12-01T00:00Z"}
FILTER_HINT = (
    "status:waiting,needs_attention · workflow:NAME[@V] · id:PREFIX · since:2h · "
    "until:TIME · free text"
)


# -- rows ---------------------------------------------------------------------------------


def columns(wide: bool) -> tuple[str, ...]:
    if wide:
        return ("", "RUN", "WORKFLOW", "STATUS", "CREATED", "UPDATED", "WAITING FOR / ERROR")
    return ("", "RUN", "WORKFLOW", "STATUS", "UPDATED", "WAITING FOR / ERROR")


def _time(value: timestamp_pb2.Timestamp, wide: bool) -> str:
    if not value.seconds:
        return "-"
    moment = value.ToDatetime()
    return moment.strftime("%Y-%m-%d %H:%M:%S" if wide else "%m-%d %H:%M")


def why(run: run_pb2.Run) -> str:
    """What a waiting run waits for, or why one stopped."""
    if run.waiting_for:
        return run.waiting_for
    error = run.last_error
    if error.type or error.message:
        return f"{error.type}: {error.message}" if error.type else error.message
    return ""


def run_row(run: run_pb2.Run, wide: bool, marked: bool, width: int = 60) -> tuple[str, ...]:
    """The cells of a run's row (plain text: LiveTable shows str cells as they are)."""
    status = run_pb2.RunStatus.Name(run.status).removeprefix("RUN_STATUS_")
    reason = " ".join(why(run).split())
    if len(reason) > width:
        reason = reason[: width - 1] + "…"
    cells = [
        MARK if marked else " ",
        run.id if wide else run.id[:SHORT_ID],
        f"{run.workflow_name}@{run.workflow_version}",
        status,
    ]
    if wide:
        cells.append(_time(run.created_at, wide))
    cells += [_time(run.updated_at, wide), reason]
    return tuple(cells)


def _sort_key(run: run_pb2.Run, by: str) -> tuple[object, ...]:
    created = (run.created_at.seconds, run.created_at.nanos)
    if by == "updated":
        return (run.updated_at.seconds, run.updated_at.nanos, created)
    if by == "status":
        return (STATUSES.index(_status(run)) if _status(run) in STATUSES else 99, created)
    if by == "workflow":
        return (run.workflow_name, run.workflow_version, created)
    if by == "id":
        return (run.id,)
    return (*created, run.id)


def _status(run: run_pb2.Run) -> str:
    return run_pb2.RunStatus.Name(run.status).removeprefix("RUN_STATUS_")


def sorted_runs(runs: Iterable[run_pb2.Run], by: str, descending: bool) -> list[run_pb2.Run]:
    """Runs in the table's order: by `by`, newest (or largest) first when `descending`."""
    return sorted(runs, key=lambda run: _sort_key(run, by), reverse=descending)


def counts_line(counts: dict[str, int], total: int | None) -> Text:
    """`running 3 · waiting 1 · needs attention 2 · … of 151` (statuses with none left out)."""
    text = Text()
    for status in STATUSES:
        count = counts.get(status, 0)
        if not count:
            continue
        if text:
            text.append(" · ", "bright_black")
        text.append(f"{status.lower().replace('_', ' ')} ", STATUS_STYLES.get(status, ""))
        text.append(f"{count:,}", "bold")
    if total is not None:
        text.append(f"{'  ' if text else ''}total {total:,}", "bright_black")
    return text if text else Text("counting…", "bright_black")


def count_line(shown: int, loaded: int, total: int | None, marked: int, live: str) -> str:
    """`200 of 8,000 runs · live · 3 marked · PgDn loads more`."""
    line = f"{loaded:,} of {total:,} runs" if total is not None else f"{loaded:,} runs"
    if shown != loaded:
        line = f"{shown:,} shown · " + line
    line += f" · {live}"
    if marked:
        line += f" · {marked} marked (space)"
    if total is not None and loaded < total:
        line += " · PgDn loads more"
    return line
