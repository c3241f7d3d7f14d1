"""`surefoot runs pause|resume|abandon|at|fork`: hold a run, let it go on, give it up,
replay it, fork it. Pause, resume, abandon and fork also act on every run a selection
matches instead of one (run_batches.py)."""

from __future__ import annotations

import argparse
import sys
import uuid

from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli import output, run_batches
from controlplane.cli.arguments import whole_number
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.payloads import json_payload


def register_commands(commands: argparse._SubParsersAction) -> None:
    """Add the run-control commands to the `runs` group."""
    pause = commands.add_parser(
        "pause",
        help="hold a run: it starts no new step until resumed",
        description="Pause a run: attempts already running finish and are recorded, but no "
        "new step starts (the tasks they lead to wait) until `surefoot runs resume`. "
        "Approvals can still be decided and events still arrive. `runs why` shows who "
        "paused it, since when and why. With a selection instead of RUN_ID (--where "
        "workflow=W,status=RUNNING --since 2h), every run it matches is paused at --rate "
        "as a durable operation, after the plan is shown and confirmed.",
    )
    pause.add_argument("run_id", nargs="?", metavar="RUN_ID")
    pause.add_argument("--reason", "--comment", default="", help="why (kept in each run's history)")
    run_batches.add_bulk_arguments(pause)
    add_client_arguments(pause)
    pause.set_defaults(func=pause_run)

    resume = commands.add_parser(
        "resume",
        help="let a paused run go on",
        description="Resume a paused run: the steps waiting for it are handed out at once. "
        "With a selection instead of RUN_ID, every paused run it matches, at --rate.",
    )
    resume.add_argument("run_id", nargs="?", metavar="RUN_ID")
    resume.add_argument(
        "--reason", "--comment", default="", help="why (kept in each run's history)"
    )
    run_batches.add_bulk_arguments(resume)
    add_client_arguments(resume)
    resume.set_defaults(func=resume_run)

    abandon = commands.add_parser(
        "abandon",
        help="give a run up: compensate its completed steps (like `runs cancel --compensate`)",
        description="Abandon a run: what it is doing stops, the compensations of its "
        "completed steps run, newest first, and it ends COMPENSATED. With a selection "
        "instead of RUN_ID, every run it matches, at --rate (an admin's: each "
        "compensation is a business action).",
    )
    abandon.add_argument("run_id", nargs="?", metavar="RUN_ID")
    abandon.add_argument(
        "--reason", "--comment", default="", help="why (kept in each run's history)"
    )
    run_batches.add_bulk_arguments(abandon)
    add_client_arguments(abandon)
    abandon.set_defaults(func=abandon_run)

    at = commands.add_parser(
        "at",
        help="a run as it was just after one of its history events",
        description="Print the run as it was just after history event SEQ (see `runs "
        "history`): its status, each step's status, input and output. Derived by "
        "replaying the history; nothing is executed again.",
    )
    at.add_argument("run_id", metavar="RUN_ID")
    at.add_argument("seq", type=whole_number(1), metavar="SEQ", help="a history seq (1..last)")
    add_client_arguments(at)
    at.set_defaults(func=run_at)

    fork = commands.add_parser(
        "fork",
        help="a new run of the same version, executing from a node on",
        description="Start a new run of the same workflow version that takes the recorded "
        "outputs of the steps its parent completed before NODE and executes NODE onward. "
        "The fork is a new business action: its steps get new idempotency keys, so a "
        "step that charges a card charges again. Prints the new run's id; both runs link "
        "to each other (`runs show`). With a selection instead of RUN_ID (it must name "
        "the workflow: --where workflow=W,...), every run it matches is forked at --rate "
        "(an admin's); `operations show ID --items applied` lists the forks.",
    )
    fork.add_argument(
        "run_id", nargs="?", metavar="RUN_ID", help="the run to fork (it is not changed)"
    )
    fork.add_argument("--from", dest="from_node", required=True, metavar="NODE")
    source = fork.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="JSON", help="the fork's input (default: the parent's)")
    source.add_argument("--input-file", metavar="PATH", help="read the input from PATH (-: stdin)")
    fork.add_argument(
        "--request-id",
        metavar="ID",
        help="idempotency key of the fork (or of the operation forking a selection): the "
        "same id returns the same fork (default: random)",
    )
    fork.add_argument("--comment", default="", help="why (kept in the fork's history)")
    run_batches.add_bulk_arguments(fork, request_id=False)
    add_client_arguments(fork)
    fork.set_defaults(func=fork_run)


def pause_run(args: argparse.Namespace) -> int:
    if run_batches.is_bulk(args, args.run_id):
        action = opb.RunAction(type=opb.RUN_ACTION_TYPE_PAUSE)
        return run_batches.run_action(args, action, args.reason)
    request = ws.PauseRunRequest(namespace=args.namespace, run_id=args.run_id, reason=args.reason)
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.PauseRun, request)
    if args.json:
        output.print_json(response)
        return 0
    run = response.run
    print(f"paused run {run.id} (by {run.paused.paused_by}); `surefoot runs resume {run.id}`")
    return 0


def resume_run(args: argparse.Namespace) -> int:
    if run_batches.is_bulk(args, args.run_id):
        action = opb.RunAction(type=opb.RUN_ACTION_TYPE_RESUME)
        return run_batches.run_action(args, action, args.reason)
    request = ws.ResumeRunRequest(namespace=args.namespace, run_id=args.run_id, reason=args.reason)
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.ResumeRun, request)
    if args.json:
        output.print_json(response)
        return 0
    status = output.enum_name(run_pb2.RunStatus, response.run.status)
    print(f"resumed run {response.run.id} (status {status})")
    return 0


def abandon_run(args: argparse.Namespace) -> int:
    if run_batches.is_bulk(args, args.run_id):
        action = opb.RunAction(type=opb.RUN_ACTION_TYPE_ABANDON)
        return run_batches.run_action(args, action, args.reason)
    request = ws.CancelRunRequest(
        namespace=args.namespace, run_id=args.run_id, reason=args.reason, compensate=True
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.CancelRun, request)
    if args.json:
        output.print_json(response)
        return 0
    status = output.enum_name(run_pb2.RunStatus, response.run.status)
    print(f"abandoned run {response.run.id or args.run_id} (status {status})")
    return 0


def run_at(args: argparse.Namespace) -> int:
    request = ws.GetRunAtRequest(namespace=args.namespace, run_id=args.run_id, seq=args.seq)
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.GetRunAt, request)
    if args.json:
        output.print_json(response)
        return 0
    snap = response.snapshot
    event = snap.event
    paused = snap.paused
    output.print_fields(
        [
            ("run", snap.run_id),
            ("seq", f"{snap.seq} of {snap.last_seq}"),
            (
                "event",
                f"{output.enum_name(run_pb2.EventType, event.type)} {event.node_id}".strip(),
            ),
            ("time", output.timestamp(snap.time)),
            ("status", output.enum_name(run_pb2.RunStatus, snap.status)),
            ("current node", snap.current_node),
            (
                "paused",
                f"by {paused.paused_by}: {paused.reason}" if snap.HasField("paused") else "",
            ),
            ("input", output.payload_text(snap.input)),
            ("output", output.payload_text(snap.output)),
            ("last error", f"{snap.last_error.type}: {snap.last_error.message}".strip(": ")),
        ]
    )
    if snap.steps:
        print()
        output.print_table(
            ["node", "kind", "status", "attempt", "input", "output"],
            [
                (
                    s.node_id,
                    s.kind or "task",
                    output.enum_name(run_pb2.StepStatus, s.status),
                    s.attempt or "-",
                    output.payload_text(s.input, 30) if s.HasField("input") else "-",
                    output.payload_text(s.output, 30) if s.HasField("output") else "-",
                )
                for s in snap.steps
            ],
        )
    for note in snap.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def fork_run(args: argparse.Namespace) -> int:
    given = json_payload(args.input, args.input_file, "input")
    if run_batches.is_bulk(args, args.run_id):
        action = run_batches.fork_action(args.from_node, given)
        return run_batches.run_action(args, action, args.comment)
    request = ws.ForkRunRequest(
        namespace=args.namespace,
        run_id=args.run_id,
        from_node=args.from_node,
        input_override=given,
        # Always sent, so that a retried fork does not fork twice.
        request_id=args.request_id or str(uuid.uuid4()),
        comment=args.comment,
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.ForkRun, request)
    if args.json:
        output.print_json(response)
        return 0
    reused = ", ".join(response.reused_nodes) or "none"
    if not response.created:
        print(f"request id {request.request_id} already made this fork", file=sys.stderr)
    print(f"forked run {args.run_id} from {args.from_node!r}; reused: {reused}", file=sys.stderr)
    print(response.run.id)
    return 0
