"""`surefoot runs ...`: start, inspect, follow, list and cancel runs (pause, resume, replay
and fork: run_control.py)."""

from __future__ import annotations

import argparse
import sys
import textwrap
import uuid
from typing import Any

from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli import output, run_control, run_listing, run_trace
from controlplane.cli import run_following as following
from controlplane.cli.arguments import whole_number
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.definitions import split_ref
from controlplane.cli.errors import EXIT_REFUSED
from controlplane.cli.payloads import json_payload
from controlplane.cli.run_batches import add_bulk_arguments, is_bulk, run_action


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "runs", help="start, inspect, follow, list, cancel, pause, replay and fork runs"
    )
    group.set_defaults(func=lambda args: output.print_group_help(group))
    commands = group.add_subparsers(title="commands", metavar="COMMAND")

    start = commands.add_parser(
        "start",
        help="start a run and print its id",
        description=_paragraph(
            "Start a run of NAME (latest version) or NAME@VERSION. Prints only the run id, "
            "so that RUN=$(surefoot runs start orders --input '{}') works. With --wait, "
            "waits for the run to end instead and prints its output (the run id goes to "
            "stderr), or why it did not complete; the exit code says how it ended."
        ),
        epilog=following.OUTCOME_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    start.add_argument("ref", metavar="NAME[@VERSION]", help="the workflow to run")
    source = start.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="JSON", help="run input as JSON (default {})")
    source.add_argument(
        "--input-file", metavar="PATH", help="read the input JSON from PATH (-: stdin)"
    )
    start.add_argument(
        "--request-id",
        metavar="ID",
        help="idempotency key of the start: the same id returns the same run (default: random)",
    )
    start.add_argument(
        "--wait",
        action="store_true",
        help="wait for the run to end (live, no polling) and print its result; exit code "
        "by outcome",
    )
    add_client_arguments(start)
    start.set_defaults(func=start_run)

    show = commands.add_parser("show", help="a run's status, steps and attempts")
    show.add_argument("run_id", metavar="RUN_ID")
    add_client_arguments(show)
    show.set_defaults(func=show_run)

    why = commands.add_parser(
        "why",
        help="what a run that is not moving waits for, one line per blocker",
        description=_paragraph(
            "Print what keeps a run from moving on, one line per open branch: an approval "
            "(who may decide, since when, deadline), a timer, a retry (attempt n of m, the "
            "last error), an event (name, key), a task no connected worker can take (which "
            "versions are connected), a worker whose heartbeat is late, a dead letter. "
            "Computed by the control plane from the database when asked. With --json, the "
            "blockers as GetRun returns them."
        ),
    )
    why.add_argument("run_id", metavar="RUN_ID")
    add_client_arguments(why)
    why.set_defaults(func=why_run)

    run_listing.add_list_command(commands, _run_status)

    history = commands.add_parser("history", help="a run's event history, one line per event")
    history.add_argument("run_id", metavar="RUN_ID")
    history.add_argument(
        "--after", type=int, default=0, metavar="SEQ", help="only events after SEQ"
    )
    history.add_argument(
        "--limit",
        type=whole_number(0),
        default=0,
        metavar="N",
        help="at most N events (default 0: all); the next page is --after the last seq",
    )
    add_client_arguments(history)
    history.set_defaults(func=run_history)

    watch = commands.add_parser(
        "watch",
        help="a run's events as they happen, until it ends",
        description=_paragraph(
            "Print a run's history events as they are committed, one line each (the columns "
            "of `runs history`), and exit when the run ends, with an exit code by outcome. A "
            "lost stream is opened again from the last event received. With --json, one line "
            "of JSON per message of the WatchRun stream (events and the run's status)."
        ),
        epilog=following.OUTCOME_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    watch.add_argument("run_id", metavar="RUN_ID")
    watch.add_argument(
        "--after-seq",
        "--after",
        dest="after_seq",
        type=_seq,
        default=0,
        metavar="SEQ",
        help="only events after SEQ (default 0: the whole history)",
    )
    watch.add_argument(
        "--keep-open",
        action="store_true",
        help="keep watching after the run ended (a step of a failed run may be retried); "
        "stop with Ctrl-C",
    )
    add_client_arguments(watch)
    watch.set_defaults(func=watch_run)

    result = commands.add_parser(
        "result",
        help="the output of a run that ended (exit code by outcome)",
        description=_paragraph(
            "Print the output of a run that COMPLETED (JSON, on stdout), or why it ended "
            "otherwise (on stderr); says so, exit 4, if it has not ended."
        ),
        epilog=following.RESULT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("run_id", metavar="RUN_ID")
    add_client_arguments(result)
    result.set_defaults(func=run_result)

    cancel = commands.add_parser(
        "cancel",
        help="cancel a run, or abandon it with --compensate",
        description="Cancel a run: what it is doing or waiting for stops and it ends "
        "CANCELLED. With --compensate it is abandoned instead: the compensations of its "
        "completed steps run, newest first, and it ends COMPENSATED. With a selection "
        "instead of RUN_ID (--where workflow=W,status=WAITING --since 2h), every run it "
        "matches, at --rate, as a durable operation shown and confirmed first.",
    )
    cancel.add_argument("run_id", nargs="?", metavar="RUN_ID")
    cancel.add_argument("--reason", default="", help="why (kept in the run's history)")
    cancel.add_argument(
        "--compensate",
        action="store_true",
        help="abandon: undo the completed steps with their compensations (saga)",
    )
    add_bulk_arguments(cancel)
    add_client_arguments(cancel)
    cancel.set_defaults(func=cancel_run)

    run_control.register_commands(commands)
    run_trace.register(commands)


def _paragraph(text: str) -> str:
    # The commands whose epilog lists exit codes print their help raw: wrap the text here.
    return textwrap.fill(text, width=78)


def _seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _run_status(text: str) -> int:
    try:
        return output.enum_value(run_pb2.RunStatus, text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def start_run(args: argparse.Namespace) -> int:
    name, version = split_ref(args.ref)
    # No input at all is the empty object.
    given = json_payload(args.input, args.input_file, "input")
    request = ws.StartRunRequest(
        namespace=args.namespace,
        workflow_name=name,
        workflow_version=version,
        input=given or json_payload("{}", None, "input"),
        # Always sent, so that the start is idempotent even when the user gives none.
        request_id=args.request_id or str(uuid.uuid4()),
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.StartRun, request)
        if not response.created and not args.json:
            print(f"request id {request.request_id} already started this run", file=sys.stderr)
        if args.wait:
            print(f"started run {response.run_id}; waiting for it to end", file=sys.stderr)
            return _wait_for_end(client, response.run_id, args.json)
    if args.json:
        output.print_json(response)
    else:
        print(response.run_id)
    return 0


def _wait_for_end(client: ControlPlaneClient, run_id: str, as_json: bool) -> int:
    try:
        following.follow(client, run_id)
    except following.Interrupted as stopped:
        return following.interrupted(run_id, stopped.seq)
    # The stream says how the run ended; its output and error are the run's.
    return following.report_result(following.fetch_run(client, run_id), as_json)


def watch_run(args: argparse.Namespace) -> int:
    printer = following.print_message_json if args.json else following.EventPrinter()
    with ControlPlaneClient.from_args(args) as client:
        try:
            status = following.follow(
                client, args.run_id, args.after_seq, args.keep_open, on_message=printer
            )
        except following.Interrupted as stopped:
            return following.interrupted(args.run_id, stopped.seq)
    if not args.json:
        name = output.enum_name(run_pb2.RunStatus, status)
        print(f"run {args.run_id} ended {name}", file=sys.stderr)
    return following.ENDED.get(status, EXIT_REFUSED)


def run_result(args: argparse.Namespace) -> int:
    with ControlPlaneClient.from_args(args) as client:
        run = following.fetch_run(client, args.run_id)
    return following.report_result(run, args.json)


def show_run(args: argparse.Namespace) -> int:
    with ControlPlaneClient.from_args(args) as client:
        request = ws.GetRunRequest(namespace=args.namespace, run_id=args.run_id)
        response = client.call(client.workflows.GetRun, request)
    if args.json:
        output.print_json(response)
        return 0
    run = response.run
    waiting = run.waiting_for
    if waiting and run.HasField("waiting_since"):
        waiting += f" (since {output.timestamp(run.waiting_since)})"
    output.print_fields(
        [
            ("run", run.id),
            ("workflow", f"{run.workflow_name}@{run.workflow_version}"),
            ("status", output.enum_name(run_pb2.RunStatus, run.status)),
            ("created", output.timestamp(run.created_at)),
            ("updated", output.timestamp(run.updated_at)),
            ("closed", output.timestamp(run.closed_at)),
            ("current node", run.current_node),
            ("waiting for", waiting),
            ("last error", _error_text(run.last_error)),
            ("input", output.payload_text(run.input)),
            ("output", output.payload_text(run.output)),
            ("trace id", run.trace_id),
            ("paused", _paused_text(run)),
            ("forked from", _link_text(run.forked_from) if run.HasField("forked_from") else ""),
            ("forks", ", ".join(_link_text(f) for f in run.forks)),
        ]
    )
    if run.blocked_on:
        print()
        print("BLOCKED ON")
        for line in _blocker_lines(run.blocked_on):
            print(f"  {line}")
    if run.steps:
        print()
        for line in _steps_lines(run.steps):
            print(line)
    return 0


def _paused_text(run: run_pb2.Run) -> str:
    if not run.HasField("paused"):
        return ""
    reason = f": {run.paused.reason}" if run.paused.reason else ""
    return f"by {run.paused.paused_by} since {output.timestamp(run.paused_at)}{reason}"


def _link_text(link: run_pb2.RunLink) -> str:
    return f"{link.run_id} (from {link.node_id})"


def why_run(args: argparse.Namespace) -> int:
    with ControlPlaneClient.from_args(args) as client:
        request = ws.GetRunRequest(namespace=args.namespace, run_id=args.run_id)
        run = client.call(client.workflows.GetRun, request).run
    status = output.enum_name(run_pb2.RunStatus, run.status)
    if args.json:
        output.print_json(
            {
                "run_id": run.id,
                "status": status,
                "blocked_on": [output.message_dict(b) for b in run.blocked_on],
            }
        )
        return 0
    if not run.blocked_on:
        ended = run.status in _ENDED
        print(f"run {run.id} is {status}: " + ("it has ended" if ended else "nothing blocks it"))
        return 0
    for line in _blocker_lines(run.blocked_on):
        print(line)
    return 0


_ENDED = (
    run_pb2.RUN_STATUS_COMPLETED,
    run_pb2.RUN_STATUS_FAILED,
    run_pb2.RUN_STATUS_COMPENSATED,
    run_pb2.RUN_STATUS_CANCELLED,
)


def _blocker_lines(blockers: Any) -> list[str]:
    """One line per blocker: its kind (as the enum names it, lower case) and description."""
    return [
        f"{output.enum_name(run_pb2.BlockedOnKind, b.kind).lower()}: {b.description}"
        for b in blockers
    ]


def _error_text(error: run_pb2.StepError) -> str:
    if not error.type and not error.message:
        return ""
    text = f"{error.type}: {error.message}" if error.type else error.message
    return output.truncate(text.replace("\n", " "), output.DATA_WIDTH)


def _progress_text(attempt: run_pb2.Attempt) -> str:
    """What a running attempt's worker last said of its progress (heartbeat details)."""
    if not attempt.details.data:
        return ""
    return "progress: " + output.payload_text(attempt.details, output.DATA_WIDTH - 10)


def _steps_lines(steps: Any) -> list[str]:
    """The steps table with each step's attempts, or what it waits for, indented under it.

    Attempts of all steps are laid out as one table so that their columns line up too.
    """
    step_lines = output.table(
        ["node", "kind", "step type", "status", "attempt", "idempotency key"],
        [
            (
                s.node_id,
                s.kind or "task",
                s.step_type or "-",
                output.enum_name(run_pb2.StepStatus, s.status),
                # Only steps that run on a worker have attempts and keys that mean something.
                s.attempt if _runs_on_a_worker(s) and s.attempt else "-",
                s.idempotency_key if _runs_on_a_worker(s) and s.idempotency_key else "-",
            )
            for s in steps
        ],
    )
    attempt_rows = [
        (
            f"#{a.number}",
            a.worker_id or "-",
            output.enum_name(run_pb2.AttemptOutcome, a.outcome),
            output.timestamp(a.started_at),
            _error_text(a.error) or _progress_text(a),
        )
        for s in steps
        for a in s.attempts
    ]
    attempt_lines = iter(output.table(None, attempt_rows))
    lines = step_lines[:1]
    for step, step_line in zip(steps, step_lines[1:], strict=True):
        lines.append(step_line)
        lines.extend(f"    {next(attempt_lines)}" for _ in step.attempts)
        if step.HasField("next_attempt_at"):
            lines.append(f"    next attempt at {output.timestamp(step.next_attempt_at)}")
        if step.waiting_for:
            lines.append(f"    waiting for {step.waiting_for}")
    return lines


def _runs_on_a_worker(step: run_pb2.Step) -> bool:
    return step.kind in ("", "task", "compensation")


def run_history(args: argparse.Namespace) -> int:
    request = ws.GetRunHistoryRequest(
        namespace=args.namespace, run_id=args.run_id, after_seq=args.after, limit=args.limit
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.GetRunHistory, request)
    if args.json:
        output.print_json(response)
    elif not response.events:
        print(f"no events after seq {args.after}" if args.after else "no events")
    else:
        output.print_table(
            following.EVENT_HEADERS, [following.event_cells(e) for e in response.events]
        )
    if args.limit and len(response.events) == args.limit:
        # A full page: there may be more (stderr, so that the table or document pipes alone).
        print(f"next page: --after {response.events[-1].seq}", file=sys.stderr)
    return 0


def cancel_run(args: argparse.Namespace) -> int:
    if is_bulk(args, args.run_id):
        kind = opb.RUN_ACTION_TYPE_ABANDON if args.compensate else opb.RUN_ACTION_TYPE_CANCEL
        return run_action(args, opb.RunAction(type=kind), args.reason)
    request = ws.CancelRunRequest(
        namespace=args.namespace,
        run_id=args.run_id,
        reason=args.reason,
        compensate=args.compensate,
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.CancelRun, request)
    if args.json:
        output.print_json(response)
        return 0
    status = output.enum_name(run_pb2.RunStatus, response.run.status)
    verb = {
        "CANCELLED": "cancelled",
        "COMPENSATING": "compensating",
        "COMPENSATED": "compensated",
    }.get(status, "compensating" if args.compensate else "cancelling")
    print(f"{verb} run {response.run.id or args.run_id} (status {status})")
    return 0
