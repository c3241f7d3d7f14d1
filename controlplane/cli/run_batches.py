"""The bulk form of `surefoot runs cancel|abandon|pause|resume|fork`: every run a selection
matches, acted on as a durable operation at a rate (like `deadletters redrive`).

    surefoot runs pause --where workflow=checkout,status=RUNNING --since 2h --rate 50 \\
        --reason "provider incident INC-42"

Runs are selected with `--where KEY=VALUE,...` (workflow, version, status, id), `--since` and
`--until` (an age or a time), `--run ID` (repeatable) or `--all`. Like the Temporal CLI's
batch commands and kubectl's destructive ones, it shows the plan first (a dry run: how many
runs match, how many the action applies to, how long at the rate) and starts only once
confirmed: `--yes` skips the question, and without a terminal to ask on it is required.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import common_pb2, run_pb2
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli import arguments, operations, output, run_action_output
from controlplane.cli.arguments import whole_number
from controlplane.cli.errors import EXIT_OK, EXIT_REFUSED, CliError, usage_error

DEFAULT_RATE = 20.0
# The server's bounds (controlplane/api/run_action_requests.py), checked before sending.
MIN_RATE = 0.001
MAX_RATE = 10_000.0
_KEYS = {
    "workflow": "workflow_name",
    "version": "workflow_version",
    "status": "statuses",
    "id": "run_id_prefix",
}
_STATUSES = [
    value.name.removeprefix("RUN_STATUS_")
    for value in run_pb2.RunStatus.DESCRIPTOR.values
    if value.number != run_pb2.RUN_STATUS_UNSPECIFIED
]


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not MIN_RATE <= value <= MAX_RATE:
        raise argparse.ArgumentTypeError(f"must be between {MIN_RATE:g} and {MAX_RATE:.0f}")
    return value


def add_bulk_arguments(parser: argparse.ArgumentParser, *, request_id: bool = True) -> None:
    """The options that select runs instead of RUN_ID, and those of the operation."""
    group = parser.add_argument_group(
        "many runs at once (instead of RUN_ID): a durable operation, see `surefoot operations`"
    )
    group.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE,...",
        help="select runs by workflow=NAME, version=V, status=S (S1|S2, or repeat the key), "
        "id=PREFIX (of the run id); every key given must match",
    )
    group.add_argument(
        "--since",
        metavar="AGE|TIME",
        help="runs created in the last AGE (90s, 15m, 2h, 7d) or at or after TIME (RFC 3339)",
    )
    group.add_argument(
        "--until", metavar="AGE|TIME", help="runs created before AGE ago, or before TIME"
    )
    group.add_argument(
        "--run", action="append", default=[], metavar="RUN_ID", help="this run (repeat)"
    )
    group.add_argument(
        "--all",
        dest="all_runs",
        action="store_true",
        help="every run of the namespace: required when nothing else selects",
    )
    group.add_argument(
        "--limit",
        type=whole_number(1),
        default=0,
        metavar="N",
        help="at most N runs, oldest first (default: every match)",
    )
    group.add_argument(
        "--rate",
        type=_rate,
        default=None,
        metavar="N",
        help=f"runs per second over every control plane (default {DEFAULT_RATE:g})",
    )
    group.add_argument(
        "--dry-run", action="store_true", help="show the plan only: how many, how long"
    )
    group.add_argument(
        "-y", "--yes", action="store_true", help="start without showing the plan and asking"
    )
    group.add_argument(
        "--wait",
        action="store_true",
        help="follow the operation until it is done; exit 0 if it acted on every run it "
        f"planned to, {operations.EXIT_INCOMPLETE} otherwise",
    )
    if request_id:
        group.add_argument(
            "--request-id",
            default="",
            metavar="ID",
            help="repeating the command with the same id returns the first operation",
        )


def is_bulk(args: argparse.Namespace, run_id: str | None) -> bool:
    """Whether the command acts on a selection; a usage error if it is both or neither."""
    selects = bool(args.where or args.since or args.until or args.run or args.all_runs)
    operates = bool(args.limit or args.rate is not None or args.dry_run or args.yes or args.wait)
    if run_id is not None:
        if selects or operates:
            raise usage_error(
                "give either RUN_ID or a selection (--where, --since, --until, --run, --all), "
                "not both; --limit, --rate, --dry-run, --yes and --wait are for a selection"
            )
        return False
    if not selects:
        raise usage_error(
            "give RUN_ID, or select runs with --where, --since, --until, --run or --all"
        )
    return True


def selection(args: argparse.Namespace, now: datetime | None = None) -> opb.RunSelection:
    """The RunSelection the options describe; a usage error for a malformed one."""
    now = now or datetime.now(UTC)
    found = ws.RunFilter()
    seen: set[str] = set()
    for clause in args.where:
        for part in filter(None, (p.strip() for p in clause.split(","))):
            key, sep, value = part.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep or key not in _KEYS or not value:
                raise usage_error(
                    f"--where {part!r}: expected KEY=VALUE with KEY one of " + ", ".join(_KEYS)
                )
            if key == "status":
                for name in value.split("|"):
                    found.statuses.append(_status(name))
                continue
            if key in seen:
                raise usage_error(f"--where gives {key} twice")
            seen.add(key)
            setattr(found, _KEYS[key], value)
    if args.since:
        found.created_after.CopyFrom(_time("--since", args.since, now))
    if args.until:
        found.created_before.CopyFrom(_time("--until", args.until, now))
    return opb.RunSelection(
        filter=found, run_ids=args.run, limit=args.limit, all_runs=args.all_runs
    )


def _status(name: str) -> run_pb2.RunStatus.ValueType:
    upper = name.strip().upper()
    if upper not in _STATUSES:
        raise usage_error(f"--where status={name}: one of " + ", ".join(_STATUSES))
    return run_pb2.RunStatus.Value(f"RUN_STATUS_{upper}")


def _time(option: str, text: str, now: datetime) -> Timestamp:
    """An age before `now` ("2h") or a time (RFC 3339; without an offset, UTC)."""
    try:
        return arguments.point_in_time(text, now)
    except ValueError:
        raise usage_error(
            f"{option} {text!r}: an age (90s, 15m, 2h, 7d, 1w) or a time (2026-05-01T12:00Z)"
        ) from None


def run_action(
    args: argparse.Namespace,
    action: opb.RunAction,
    comment: str,
    *,
    ask: Callable[[str], bool] | None = None,
) -> int:
    """Plan, confirm and start the action over the selected runs; follow it with --wait."""
    request = opb.StartRunActionRequest(
        namespace=args.namespace,
        selection=selection(args),
        action=action,
        rate_per_second=args.rate if args.rate is not None else DEFAULT_RATE,
        comment=comment,
        # A retried command (a timeout, a lost connection) with the same id acts once.
        request_id=getattr(args, "request_id", "") or str(uuid.uuid4()),
    )
    verb = run_action_output.VERBS[action.type]
    with operations.OperationsClient.from_args(args) as client:
        if args.dry_run or not args.yes:
            dry = opb.StartRunActionRequest()
            dry.CopyFrom(request)
            dry.dry_run = True
            planned = client.call(client.operations.StartRunAction, dry)
            if args.json and args.dry_run:
                output.print_json(planned)
                return EXIT_OK
            run_action_output.print_plan(planned.plan, action)
            if args.dry_run:
                return EXIT_OK
            if planned.plan.applicable == 0:
                print(f"nothing to {verb}: not started")
                return EXIT_REFUSED
            confirm = ask or _ask_on_terminal
            if not confirm(f"{verb} {planned.plan.applicable} runs? [y/N] "):
                print("not started", file=sys.stderr)
                return EXIT_REFUSED
        response = client.call(client.operations.StartRunAction, request)
        if args.json and not args.wait:
            output.print_json(response)
            return EXIT_OK
        operation = response.operation
        if not args.json:
            if args.yes:
                run_action_output.print_plan(response.plan, action)
            started = "already started" if response.existing else "started"
            print(f"{operation.kind} {operation.id} {started}")
        if not args.wait:
            print(f"follow it with: surefoot operations watch {operation.id}")
            return EXIT_OK
        return operations.follow(client, operation.id, as_json=args.json)


def _ask_on_terminal(question: str) -> bool:
    if not sys.stdin.isatty():
        raise CliError(
            "not started: confirm with --yes (the plan above is what it would do)",
            exit_code=2,
        )
    print(question, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def fork_action(from_node: str, given: common_pb2.Payload | None) -> opb.RunAction:
    action = opb.RunAction(type=opb.RUN_ACTION_TYPE_FORK, from_node=from_node)
    if given is not None:
        action.input_override.CopyFrom(given)
    return action
