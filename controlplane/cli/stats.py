"""`surefoot stats`: the figures an operator without Grafana asks first, per step type.

The first-attempt success rate (the share of steps whose first attempt completed), p50/p95
of attempt times, retries and dead letters, over the runs created in a window, computed
from the control plane's runs as ListRuns and GetRun return them (the same attempts the
history records), so that the figures agree with what `surefoot runs show` says.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli import output
from controlplane.cli.arguments import point_in_time, whole_number
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.errors import EXIT_OK

PAGE = 1000
# Attempt outcomes that end a try; a CANCELLED attempt (its run stopped) is no verdict.
ENDED = {
    run_pb2.ATTEMPT_OUTCOME_COMPLETED,
    run_pb2.ATTEMPT_OUTCOME_FAILED,
    run_pb2.ATTEMPT_OUTCOME_LOST,
}


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    stats = subparsers.add_parser(
        "stats",
        help="first-attempt success rate, step times, retries, dead letters per step type",
        description="Per step type, over the runs created since --since: the first-attempt "
        "success rate (steps whose first attempt completed, of the steps whose first "
        "attempt ended), p50 and p95 of attempt times (from the lease to the outcome), "
        "retries (attempts after the first) and steps dead-lettered now. Read from the "
        "runs (ListRuns, GetRun): one call per run, at most --max-runs of the newest.",
    )
    stats.add_argument("--workflow", default="", metavar="W", help="only runs of workflow W")
    stats.add_argument(
        "--since",
        type=point_in_time,
        default=None,
        metavar="AGE|TIME",
        help="runs created at or after TIME, or AGE ago (90s, 15m, 2h, 7d; default 24h)",
    )
    stats.add_argument(
        "--max-runs",
        type=whole_number(1, 100_000),
        default=5000,
        metavar="N",
        help="read at most the N newest runs of the window (default %(default)s)",
    )
    add_client_arguments(stats)
    stats.set_defaults(func=show_stats)


@dataclass
class StepFigures:
    step_type: str
    steps: int = 0
    first_attempts: int = 0
    first_attempt_successes: int = 0
    attempts: int = 0
    retries: int = 0
    dead_letters: int = 0
    durations: list[float] = field(default_factory=list, repr=False)

    @property
    def first_attempt_success_rate(self) -> float | None:
        if not self.first_attempts:
            return None
        return self.first_attempt_successes / self.first_attempts

    def percentile(self, share: float) -> float | None:
        """Nearest rank: the smallest time at least `share` of the attempts took."""
        if not self.durations:
            return None
        ordered = sorted(self.durations)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]

    def document(self) -> dict[str, object]:
        found = asdict(self)
        del found["durations"]
        found["first_attempt_success_rate"] = self.first_attempt_success_rate
        found["p50_seconds"] = self.percentile(0.5)
        found["p95_seconds"] = self.percentile(0.95)
        return found


def step_figures(runs: Iterable[run_pb2.Run]) -> list[StepFigures]:
    """Figures per step type of the task steps of `runs` (GetRun's, with their attempts)."""
    by_type: dict[str, StepFigures] = {}
    for run in runs:
        for step in run.steps:
            if not step.step_type:
                continue  # an approval, a sleep, a switch: no worker, no attempt
            figures = by_type.setdefault(step.step_type, StepFigures(step.step_type))
            figures.steps += 1
            if step.status == run_pb2.STEP_STATUS_DEAD_LETTERED:
                figures.dead_letters += 1
            for attempt in step.attempts:
                if attempt.outcome not in ENDED:
                    continue
                figures.attempts += 1
                if attempt.number == 1:
                    figures.first_attempts += 1
                    if attempt.outcome == run_pb2.ATTEMPT_OUTCOME_COMPLETED:
                        figures.first_attempt_successes += 1
                else:
                    figures.retries += 1
                if attempt.HasField("started_at") and attempt.HasField("ended_at"):
                    seconds = _seconds(attempt.ended_at) - _seconds(attempt.started_at)
                    figures.durations.append(max(0.0, seconds))
    return sorted(by_type.values(), key=lambda f: f.step_type)


def _seconds(stamp: Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def show_stats(args: argparse.Namespace) -> int:
    since = args.since or point_in_time("24h")
    with ControlPlaneClient.from_args(args) as client:
        run_ids, total = _run_ids(client, args.workflow, since, args.max_runs)
        runs = (
            client.call(
                client.workflows.GetRun, ws.GetRunRequest(namespace=client.namespace, run_id=run_id)
            ).run
            for run_id in run_ids
        )
        figures = step_figures(runs)
    window = since.ToDatetime(tzinfo=UTC)
    if args.json:
        output.print_document(
            {
                "since": window.isoformat(),
                "workflow": args.workflow,
                "runs": len(run_ids),
                "runs_in_window": total,
                "step_types": [f.document() for f in figures],
            }
        )
        return EXIT_OK
    read = (
        f"{len(run_ids)} run(s)"
        if len(run_ids) == total
        else f"the newest {len(run_ids)} of {total} runs"
    )
    print(
        f"{read} created since {_when(window)}" + (f" of {args.workflow}" if args.workflow else "")
    )
    if figures:
        output.print_table(
            ["step type", "first-attempt ok", "p50", "p95", "attempts", "retries", "dead letters"],
            [
                [
                    f.step_type,
                    _rate(f),
                    _duration(f.percentile(0.5)),
                    _duration(f.percentile(0.95)),
                    f.attempts,
                    f.retries,
                    f.dead_letters,
                ]
                for f in figures
            ],
        )
    return EXIT_OK


def _run_ids(
    client: ControlPlaneClient, workflow: str, since: Timestamp, limit: int
) -> tuple[list[str], int]:
    """The newest `limit` runs of the window, and how many the window holds."""
    found: list[str] = []
    token, total = "", 0
    while len(found) < limit:
        request = ws.ListRunsRequest(
            namespace=client.namespace,
            workflow_name=workflow,
            created_after=since,
            page_size=min(PAGE, limit - len(found)),
            page_token=token,
        )
        page = client.call(client.workflows.ListRuns, request)
        total = page.total
        found.extend(run.id for run in page.runs)
        token = page.next_page_token
        if not token:
            break
    return found, max(total, len(found))


def _rate(figures: StepFigures) -> str:
    rate = figures.first_attempt_success_rate
    if rate is None:
        return "-"
    return f"{rate:.1%} ({figures.first_attempt_successes}/{figures.first_attempts})"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
