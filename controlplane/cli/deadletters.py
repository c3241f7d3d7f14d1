"""`surefoot deadletters ...`: triage the steps that gave up and wait for an operator.

A dead letter is a step (or a compensation) whose retries ran out or whose error was not
retryable; its run waits in NEEDS_ATTENTION. An operator lists them, sees an incident as one
group, and retries, skips or redrives. Who decides is the caller (`--token`, or the OS user
under `surefoot dev`), and every decision is recorded in the run's history.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli import operations, output
from controlplane.cli.arguments import page_size, whole_number
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.errors import usage_error
from controlplane.cli.operations import EXIT_INCOMPLETE
from controlplane.cli.payloads import json_payload

# Wide enough for the usual "card 4242 declined", short enough to keep a row on one line.
MESSAGE_WIDTH = 60
DEFAULT_RATE = 20.0
# The server's bounds (controlplane/api/redrive_requests.py), checked before anything is sent.
MIN_RATE = 0.001
MAX_RATE = 10_000.0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "deadletters",
        help="list, group, retry, skip and redrive dead-lettered steps",
        description="A step whose retries ran out, or whose error is not retryable, is "
        "dead-lettered and its run waits in NEEDS_ATTENTION. Retry it (as it was or with "
        "corrected input), skip it with the output it should have returned, or redrive "
        "every dead letter of an incident at once. Each decision is history with your "
        "principal (--token, or the OS user under `surefoot dev`).",
    )
    group.set_defaults(func=lambda args: output.print_group_help(group))
    commands = group.add_subparsers(title="commands", metavar="COMMAND")

    list_ = commands.add_parser("list", help="list dead letters, oldest first")
    _add_filters(list_)
    list_.add_argument(
        "--limit", type=page_size, default=0, metavar="N", help="at most N (1-1000; default 100)"
    )
    list_.add_argument("--page-token", default="", metavar="T", help="continue a previous listing")
    add_client_arguments(list_)
    list_.set_defaults(func=list_dead_letters)

    groups = commands.add_parser(
        "groups",
        help="dead letters grouped by workflow, step type, error type and signature",
        description="One row per (workflow and version, step type and version, error type, "
        "error signature) with how many, when first and last seen, the step type's "
        "idempotency declaration, and the newest one's run: an incident of thousands of "
        "failures is one row. The signature is the message with ids, numbers, hex and "
        "times normalised. Redrive a group with `deadletters redrive` and its filters "
        "(--json prints each group's filter).",
    )
    _add_filters(groups)
    groups.add_argument(
        "--limit",
        type=page_size,
        default=0,
        metavar="N",
        help="at most N groups (1-1000; default 100)",
    )
    groups.add_argument("--page-token", default="", metavar="T", help="continue a listing")
    add_client_arguments(groups)
    groups.set_defaults(func=list_groups)

    retry = commands.add_parser(
        "retry",
        help="run a dead-lettered step again, as it was or with corrected input",
        description="Run the dead-lettered step again: a new attempt with the same "
        "idempotency key and a fresh retry budget. --input replaces the step's input.",
    )
    _add_step_arguments(retry)
    source = retry.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="JSON", help="the step's new input as JSON")
    source.add_argument(
        "--input-file", metavar="PATH", help="read the new input JSON from PATH (-: stdin)"
    )
    retry.add_argument("--comment", default="", help="why (kept with the decision)")
    retry.add_argument(
        "--forget-connector-outcome",
        action="store_true",
        help="for a connector step dead-lettered as OutcomeUnknown: you checked that the call "
        "did not happen, so the retry may call again",
    )
    add_client_arguments(retry, writes=True)
    retry.set_defaults(func=retry_step)

    skip = commands.add_parser(
        "skip",
        help="complete a dead-lettered step with a given output instead of running it",
        description="Take the dead-lettered step as completed with OUTPUT (what it should "
        "have returned; the nodes after it read it) and move the run on.",
    )
    _add_step_arguments(skip)
    given = skip.add_mutually_exclusive_group(required=True)
    # Kept apart from args.output, the print format, which --json sets to "json".
    given.add_argument(
        "--output", dest="step_output", metavar="JSON", help="the step's output as JSON"
    )
    given.add_argument(
        "--output-file", metavar="PATH", help="read the output JSON from PATH (-: stdin)"
    )
    skip.add_argument("--comment", default="", help="why (kept with the decision)")
    add_client_arguments(skip, writes=True)
    skip.set_defaults(func=skip_step)

    redrive = commands.add_parser(
        "redrive",
        help="retry every dead letter matching a filter, at a rate, as a durable operation",
        description="Retry every dead letter matching the filters (and --run ids), oldest "
        "first, through their steps' normal queues at --rate per second. It is a durable "
        "operation: the control planes work through it across restarts and never retry one "
        "dead letter twice; follow it with --wait or `surefoot operations watch`. Steps "
        "declared idempotency none (they may have happened) are left alone without "
        "--include-unsafe. --dry-run says how many, per step type, and how long, and "
        "changes nothing. At least one filter is required: redriving everything is refused.",
    )
    _add_filters(redrive)
    redrive.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="RUN_ID",
        help="only this run's dead letter (repeat for several)",
    )
    redrive.add_argument(
        "--limit",
        type=whole_number(1),
        default=0,
        metavar="N",
        help="at most N, oldest first (default: every match)",
    )
    redrive.add_argument(
        "--rate",
        type=_rate,
        default=DEFAULT_RATE,
        metavar="N",
        help=f"retries per second over every control plane (default {DEFAULT_RATE:g})",
    )
    redrive.add_argument("--dry-run", action="store_true", help="say what it would do, only")
    redrive.add_argument(
        "--include-unsafe",
        action="store_true",
        help="redrive steps declared idempotency none too (they may have happened)",
    )
    redrive.add_argument("--comment", default="", help="why (kept with each run's retry)")
    redrive.add_argument(
        "--request-id",
        default="",
        metavar="ID",
        help="repeating the command with the same id returns the first operation "
        "(default: a new id each time)",
    )
    redrive.add_argument(
        "--wait",
        action="store_true",
        help="follow the operation until it is done; exit 0 if every item succeeded, "
        f"{EXIT_INCOMPLETE} otherwise",
    )
    add_client_arguments(redrive)
    redrive.set_defaults(func=redrive_dead_letters)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workflow", default="", metavar="NAME", help="only this workflow's")
    parser.add_argument(
        "--workflow-version", default="", metavar="V", help="only this workflow version's"
    )
    parser.add_argument("--step-type", default="", metavar="T", help="only this step type's")
    parser.add_argument("--step-version", default="", metavar="V", help="only this step version's")
    parser.add_argument(
        "--error-type", default="", metavar="E", help="only those that gave up with error E"
    )
    parser.add_argument(
        "--signature", default="", metavar="S", help="only those with this error signature"
    )


def _add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="the run that needs attention")
    parser.add_argument(
        "node_id", metavar="NODE_ID", help="its dead-lettered step (<node>.compensation for one)"
    )


def _filter(args: argparse.Namespace) -> ws.DeadLetterFilter:
    return ws.DeadLetterFilter(
        workflow_name=args.workflow,
        workflow_version=args.workflow_version,
        step_type=args.step_type,
        step_version=args.step_version,
        error_type=args.error_type,
        error_signature=args.signature,
    )


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not MIN_RATE <= value <= MAX_RATE:  # NaN fails both
        raise argparse.ArgumentTypeError(f"must be between {MIN_RATE:g} and {MAX_RATE:g}")
    return value


def _error_text(error_type: str, message: str) -> str:
    # Messages may hold newlines (a traceback's last lines): one row stays one line.
    text = f"{error_type}: {message}" if message else error_type
    return output.truncate(" ".join(text.split()), MESSAGE_WIDTH)


def list_dead_letters(args: argparse.Namespace) -> int:
    request = ws.ListDeadLettersRequest(
        namespace=args.namespace,
        filter=_filter(args),
        page_size=args.limit,
        page_token=args.page_token,
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.ListDeadLetters, request)
    if args.json:
        output.print_json(response)
        return 0
    if not response.dead_letters:
        print("no dead letters")
    output.print_table(
        [
            *("run", "node", "workflow", "step type", "error", "attempts", "since"),
            *("step version", "idempotency", "signature"),
        ],
        [
            (
                d.run_id,
                d.node_id,
                f"{d.workflow_name}@{d.workflow_version}",
                d.step_type or "-",
                _error_text(d.error_type, d.error_message),
                d.attempts,
                output.timestamp(d.dead_lettered_at),
                d.step_version or "-",
                d.idempotency or "-",
                d.error_signature or "-",
            )
            for d in response.dead_letters
        ],
        wide_from=7,
    )
    if response.next_page_token:
        # On stderr so that `surefoot deadletters list | ...` pipes only the table.
        print(f"next page: --page-token {response.next_page_token}", file=sys.stderr)
    return 0


def list_groups(args: argparse.Namespace) -> int:
    request = ws.ListDeadLettersRequest(
        namespace=args.namespace,
        filter=_filter(args),
        grouped=True,
        page_size=args.limit,
        page_token=args.page_token,
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.ListDeadLetters, request)
    if args.json:
        output.print_json(response)
        return 0
    if not response.groups:
        print("no dead letters")
    output.print_table(
        [
            "count",
            "workflow",
            "step type",
            "idempotency",
            "error type",
            "signature",
            "first seen",
            "last seen",
            "sample run",
        ],
        [
            (
                g.count,
                f"{g.workflow_name}@{g.workflow_version}",
                f"{g.step_type}@{g.step_version}" if g.step_type else "-",
                g.idempotency or "-",
                g.error_type,
                _one_line(g.error_signature),
                output.timestamp(g.oldest),
                output.timestamp(g.newest),
                g.sample_run_id,
            )
            for g in response.groups
        ],
    )
    if response.next_page_token:
        print(f"next page: --page-token {response.next_page_token}", file=sys.stderr)
    return 0


def _one_line(message: str) -> str:
    return output.truncate(" ".join(message.split()), MESSAGE_WIDTH) or "-"


def retry_step(args: argparse.Namespace) -> int:
    new_input = json_payload(args.input, args.input_file, "input")
    request = ws.RetryStepRequest(
        namespace=args.namespace,
        run_id=args.run_id,
        node_id=args.node_id,
        comment=args.comment,
        forget_connector_outcome=args.forget_connector_outcome,
    )
    if new_input is not None:
        # Only a set field replaces the input: left unset, the step runs on what it had.
        request.input.CopyFrom(new_input)
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.RetryStep, request)
    if args.json:
        output.print_json(response)
        return 0
    run_id = response.run.id or args.run_id
    print(f"retried {args.node_id} of {run_id}: {_step_now(response.run, args.node_id)}")
    return 0


def _step_now(run: run_pb2.Run, node_id: str) -> str:
    """Where the retried step is now, e.g. `attempt 2 scheduled`; a worker may be quicker than
    the answer, so this is what the control plane saw, not a promise."""
    for step in run.steps:
        if step.node_id == node_id:
            status = output.enum_name(run_pb2.StepStatus, step.status)
            return f"attempt {step.attempt} {status.lower().replace('_', ' ')}"
    return f"run {output.enum_name(run_pb2.RunStatus, run.status)}"


def skip_step(args: argparse.Namespace) -> int:
    given = json_payload(args.step_output, args.output_file, "output")
    assert given is not None  # argparse requires one of --output and --output-file
    request = ws.SkipStepRequest(
        namespace=args.namespace,
        run_id=args.run_id,
        node_id=args.node_id,
        output=given,
        comment=args.comment,
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.SkipStep, request)
    if args.json:
        output.print_json(response)
        return 0
    status = output.enum_name(run_pb2.RunStatus, response.run.status)
    print(f"skipped {args.node_id} of {response.run.id or args.run_id}: run {status}")
    return 0


def redrive_dead_letters(args: argparse.Namespace) -> int:
    where = _filter(args)
    if where == ws.DeadLetterFilter() and not args.run:
        # The server refuses it too; saying so here spares a round trip and names the options.
        raise usage_error(
            "redrive needs --workflow, --step-type, --error-type, --signature (or another "
            "filter) or --run: redriving every dead letter is refused"
        )
    request = opb.StartRedriveRequest(
        namespace=args.namespace,
        selection=opb.RedriveSelection(filter=where, run_ids=args.run, limit=args.limit),
        dry_run=args.dry_run,
        rate_per_second=args.rate,
        include_unsafe=args.include_unsafe,
        comment=args.comment,
        # A retried command (a timeout, a lost connection) with the same id acts once.
        request_id=args.request_id or str(uuid.uuid4()),
    )
    with operations.OperationsClient.from_args(args) as client:
        response = client.call(client.operations.StartRedrive, request)
        if args.json and not args.wait:
            output.print_json(response)
            return 0
        if args.dry_run:
            operations.print_plan(response.plan)
            return 0
        operation = response.operation
        if not args.json:
            operations.print_plan(response.plan)
            started = "already started" if response.existing else "started"
            print(f"redrive {operation.id} {started}")
        if not args.wait:
            print(f"follow it with: surefoot operations watch {operation.id}")
            return 0
        return operations.follow(client, operation.id, as_json=args.json)
