"""`surefoot deadletters ...`: triage the steps that gave up and wait for an operator.

A dead letter is a step (or a compensation) whose retries ran out or whose error was not
retryable; its run waits in NEEDS_ATTENTION. An operator lists them, sees an incident as one
group, and retries, skips or redrives. Who decides is the caller (`--token`, or the OS user
under `surefoot dev`), and every decision is recorded in the run's history.
"""

from __future__ import annotations

import argparse
import sys

from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli import output
from controlplane.cli.arguments import page_size, whole_number
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.errors import usage_error
from controlplane.cli.payloads import json_payload

# Wide enough for the usual "card 4242 declined", short enough to keep a row on one line.
MESSAGE_WIDTH = 60
MAX_REDRIVE = 10_000


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
        help="dead letters grouped by workflow, step type and error type, largest first",
        description="One row per (workflow, step type, error type) with how many, the oldest "
        "and newest, and the newest one's message and run: an incident of thousands of "
        "identical failures is one row. Redrive a group with `deadletters redrive`.",
    )
    _add_filters(groups)
    groups.add_argument(
        "--limit",
        type=page_size,
        default=0,
        metavar="N",
        help="at most N groups (1-1000; default 100)",
    )
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
    add_client_arguments(retry)
    retry.set_defaults(func=retry_step)

    skip = commands.add_parser(
        "skip",
        help="complete a dead-lettered step with a given output instead of running it",
        description="Take the dead-lettered step as completed with OUTPUT (what it should "
        "have returned; the nodes after it read it) and move the run on.",
    )
    _add_step_arguments(skip)
    given = skip.add_mutually_exclusive_group(required=True)
    given.add_argument("--output", metavar="JSON", help="the step's output as JSON")
    given.add_argument(
        "--output-file", metavar="PATH", help="read the output JSON from PATH (-: stdin)"
    )
    skip.add_argument("--comment", default="", help="why (kept with the decision)")
    add_client_arguments(skip)
    skip.set_defaults(func=skip_step)

    redrive = commands.add_parser(
        "redrive",
        help="retry every dead letter matching a filter",
        description="Retry every dead letter matching the filters, oldest first, at most "
        "--limit of them. At least one filter is required: redriving everything is refused.",
    )
    _add_filters(redrive)
    redrive.add_argument(
        "--limit",
        type=whole_number(1, MAX_REDRIVE),
        default=0,
        metavar="N",
        help=f"at most N (1-{MAX_REDRIVE}; default 1000)",
    )
    redrive.add_argument("--comment", default="", help="why (kept with each decision)")
    add_client_arguments(redrive)
    redrive.set_defaults(func=redrive_dead_letters)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workflow", default="", metavar="NAME", help="only this workflow's")
    parser.add_argument("--step-type", default="", metavar="T", help="only this step type's")
    parser.add_argument(
        "--error-type", default="", metavar="E", help="only those that gave up with error E"
    )


def _add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="the run that needs attention")
    parser.add_argument(
        "node_id", metavar="NODE_ID", help="its dead-lettered step (<node>.compensation for one)"
    )


def _filter(args: argparse.Namespace) -> ws.DeadLetterFilter:
    return ws.DeadLetterFilter(
        workflow_name=args.workflow, step_type=args.step_type, error_type=args.error_type
    )


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
        ["run", "node", "workflow", "step type", "error", "attempts", "since"],
        [
            (
                d.run_id,
                d.node_id,
                f"{d.workflow_name}@{d.workflow_version}",
                d.step_type or "-",
                _error_text(d.error_type, d.error_message),
                d.attempts,
                output.timestamp(d.dead_lettered_at),
            )
            for d in response.dead_letters
        ],
    )
    if response.next_page_token:
        # On stderr so that `surefoot deadletters list | ...` pipes only the table.
        print(f"next page: --page-token {response.next_page_token}", file=sys.stderr)
    return 0


def list_groups(args: argparse.Namespace) -> int:
    request = ws.ListDeadLettersRequest(
        namespace=args.namespace, filter=_filter(args), grouped=True, page_size=args.limit
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.ListDeadLetters, request)
    if args.json:
        output.print_json(response)
        return 0
    if not response.groups:
        print("no dead letters")
    output.print_table(
        ["count", "workflow", "step type", "error type", "oldest", "newest", "sample"],
        [
            (
                g.count,
                g.workflow_name,
                g.step_type or "-",
                g.error_type,
                output.timestamp(g.oldest),
                output.timestamp(g.newest),
                f"{_sample_message(g.sample_message)} (run {g.sample_run_id})",
            )
            for g in response.groups
        ],
    )
    return 0


def _sample_message(message: str) -> str:
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
    given = json_payload(args.output, args.output_file, "output")
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
    if not (where.workflow_name or where.step_type or where.error_type):
        # The server refuses it too; saying so here spares a round trip and names the options.
        raise usage_error(
            "redrive needs --workflow, --step-type or --error-type: "
            "redriving every dead letter is refused"
        )
    request = ws.RedriveDeadLettersRequest(
        namespace=args.namespace, filter=where, comment=args.comment, limit=args.limit
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.RedriveDeadLetters, request)
    if args.json:
        output.print_json(response)
        return 0
    print(f"retried {response.retried}; {response.remaining} still match")
    return 0
