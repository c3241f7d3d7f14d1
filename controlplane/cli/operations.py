"""`surefoot operations ...`: durable operations (redrives, and bulk cancels, abandons,
pauses, resumes and forks of runs), listed, shown, followed, cancelled.

An operation is counted from the database item by item: `show` and `watch` print how many
were retried, succeeded, failed again (and with what), and are still running, or for a run
action how many runs were acted on and how many it no longer applied to. `watch` follows it
until it is done; its exit code says how it ended.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator

import grpc
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import operation_service_pb2_grpc

from controlplane.cli import output, run_action_output
from controlplane.cli.arguments import page_size
from controlplane.cli.channels import Connection, connection_from_args
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.errors import EXIT_OK, EXIT_REFUSED

# `watch` (and `redrive --wait`, `runs pause --wait`, ...) when the operation ended with items
# not done as asked: failed again, not retried, interrupted or cancelled; for a run action,
# runs it no longer applied to when their turn came, or cancelled.
EXIT_INCOMPLETE = 4
# A lost stream is opened again after this long, for at most RECONNECT_LIMIT in a row.
RECONNECT_SECONDS = 1.0
RECONNECT_LIMIT = 60.0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "operations",
        help="durable operations over many runs (redrives, bulk run actions): list, show, "
        "watch, cancel",
        description="A redrive (`surefoot deadletters redrive`) or a bulk run action "
        "(`surefoot runs cancel|abandon|pause|resume|fork --where ...`) is a durable "
        "operation: the control planes work through it at its rate, across restarts. These "
        "commands show its progress, counted from the database, and cancel it.",
    )
    group.set_defaults(func=lambda args: output.print_group_help(group))
    commands = group.add_subparsers(title="commands", metavar="COMMAND")

    listing = commands.add_parser("list", help="operations, newest first")
    listing.add_argument("--running", action="store_true", help="only those not done")
    listing.add_argument(
        "--limit", type=page_size, default=0, metavar="N", help="at most N (1-1000; default 100)"
    )
    listing.add_argument("--page-token", default="", metavar="T", help="continue a listing")
    add_client_arguments(listing)
    listing.set_defaults(func=list_operations)

    show = commands.add_parser(
        "show", help="an operation's progress, and what its failed items failed with"
    )
    show.add_argument("operation_id", metavar="OPERATION_ID")
    show.add_argument(
        "--items",
        choices=[name.lower() for name in _ITEM_STATES],
        metavar="STATE",
        help="also list its items in STATE (" + ", ".join(n.lower() for n in _ITEM_STATES) + ")",
    )
    add_client_arguments(show)
    show.set_defaults(func=show_operation)

    watch = commands.add_parser(
        "watch",
        help="follow an operation until it is done",
        description="Print the operation's progress as it changes, until it is done. Exit 0 "
        f"when every item was retried and succeeded, {EXIT_INCOMPLETE} when some were not "
        "(failed again, not retried, interrupted, cancelled).",
    )
    watch.add_argument("operation_id", metavar="OPERATION_ID")
    add_client_arguments(watch)
    watch.set_defaults(func=watch_operation)

    cancel = commands.add_parser(
        "cancel",
        help="stop an operation: items not retried (acted on) yet are left alone",
        description="Items not retried yet are cancelled; those already retried keep "
        "being followed until their steps finish. A run action stops acting on runs: "
        "those it acted on stay as they are.",
    )
    cancel.add_argument("operation_id", metavar="OPERATION_ID")
    cancel.add_argument("--reason", default="", help="why (kept with the operation)")
    add_client_arguments(cancel, writes=True)
    cancel.set_defaults(func=cancel_operation)


_ITEM_STATES = {
    output.enum_name(opb.OperationItemState, value): value
    for value in opb.OperationItemState.values()
    if value != opb.OPERATION_ITEM_STATE_UNSPECIFIED
}


class OperationsClient(ControlPlaneClient):
    def __init__(self, connection: Connection, namespace: str) -> None:
        super().__init__(connection, namespace)
        self.operations = operation_service_pb2_grpc.OperationServiceStub(self._channel)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OperationsClient:
        return cls(connection_from_args(args), args.namespace)

    def __enter__(self) -> OperationsClient:
        return self

    def watch(self, operation_id: str) -> Iterator[opb.Operation]:
        """The operation as it changes until done; a lost stream is opened again."""
        request = opb.WatchOperationRequest(namespace=self.namespace, operation_id=operation_id)
        lost_since: float | None = None
        while True:
            try:
                for response in self.operations.WatchOperation(request, metadata=self._metadata):
                    lost_since = None
                    yield response.operation
                    if response.operation.done:
                        return
                return
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise self._translate(exc) from exc
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > RECONNECT_LIMIT:
                    raise self._translate(exc) from exc
                time.sleep(RECONNECT_SECONDS)


def list_operations(args: argparse.Namespace) -> int:
    request = opb.ListOperationsRequest(
        namespace=args.namespace,
        page_size=args.limit,
        page_token=args.page_token,
        running_only=args.running,
    )
    with OperationsClient.from_args(args) as client:
        response = client.call(client.operations.ListOperations, request)
    if args.json:
        output.print_json(response)
        return EXIT_OK
    if not response.operations:
        print("no operations")
        return EXIT_OK
    output.print_table(
        [
            *("id", "kind", "state", "rate", "matched", "acted", "succeeded", "failed"),
            *("created", "running", "pending", "by", "finished", "comment"),
        ],
        [
            (
                o.id,
                o.kind,
                _state(o),
                f"{o.rate_per_second:g}/s",
                o.progress.matched,
                *_outcomes(o),
                output.timestamp(o.created_at),
                o.progress.running,
                o.progress.pending,
                o.created_by or "-",
                output.timestamp(o.finished_at) or "-",
                " ".join(o.comment.split()) or "-",
            )
            for o in response.operations
        ],
        wide_from=9,
    )
    if response.next_page_token:
        print(f"next page: --page-token {response.next_page_token}", file=sys.stderr)
    return EXIT_OK


def show_operation(args: argparse.Namespace) -> int:
    with OperationsClient.from_args(args) as client:
        request = opb.GetOperationRequest(namespace=args.namespace, operation_id=args.operation_id)
        operation = client.call(client.operations.GetOperation, request).operation
        items: list[opb.OperationItem] = []
        if args.items:
            items = _items(client, args.namespace, operation.id, _ITEM_STATES[args.items.upper()])
    if args.json:
        output.print_json(
            {"operation": output.message_dict(operation)}
            | ({"items": [output.message_dict(i) for i in items]} if args.items else {})
        )
        return EXIT_OK
    print_operation(operation)
    if args.items and run_action_output.is_run_action(operation):
        print()
        output.print_table(
            run_action_output.ITEM_HEADERS, [run_action_output.item_row(i) for i in items]
        )
    elif args.items:
        print()
        output.print_table(
            ["#", "run", "node", "state", "retried", "why"],
            [
                (
                    i.seq,
                    i.run_id,
                    i.node_id,
                    output.enum_name(opb.OperationItemState, i.state),
                    output.timestamp(i.retried_at) if i.HasField("retried_at") else "-",
                    output.truncate(_why(i), 80),
                )
                for i in items
            ],
        )
    return EXIT_OK


def watch_operation(args: argparse.Namespace) -> int:
    with OperationsClient.from_args(args) as client:
        return follow(client, args.operation_id, as_json=args.json)


def cancel_operation(args: argparse.Namespace) -> int:
    request = opb.CancelOperationRequest(
        namespace=args.namespace, operation_id=args.operation_id, reason=args.reason
    )
    with OperationsClient.from_args(args) as client:
        operation = client.call(client.operations.CancelOperation, request).operation
    if args.json:
        output.print_json(operation)
        return EXIT_OK
    p = operation.progress
    if run_action_output.is_run_action(operation):
        print(f"cancelled {operation.id}: {p.cancelled} runs left alone, {p.applied} acted on")
        return EXIT_OK
    print(
        f"cancelled {operation.id}: {p.cancelled} not retried; "
        f"{p.running} retried still running are followed until they finish"
    )
    return EXIT_OK


def follow(client: OperationsClient, operation_id: str, *, as_json: bool = False) -> int:
    """Print each change of the operation until it is done; the exit code of its end."""
    last: opb.Operation | None = None
    for operation in client.watch(operation_id):
        last = operation
        if as_json:
            output.print_stream_item(operation)
        else:
            print(progress_line(operation), flush=True)
    if last is None:
        return EXIT_REFUSED
    if not as_json:
        print_failures(last)
    return outcome_code(last)


def outcome_code(operation: opb.Operation) -> int:
    p = operation.progress
    incomplete = p.failed_again + p.not_retried + p.interrupted + p.cancelled + p.pending
    if run_action_output.is_run_action(operation):
        incomplete = run_action_output.incomplete(operation)
    return EXIT_OK if operation.done and incomplete == 0 else EXIT_INCOMPLETE


def progress_line(operation: opb.Operation) -> str:
    if run_action_output.is_run_action(operation):
        return run_action_output.progress_line(_state(operation), operation)
    p = operation.progress
    return (
        f"{_state(operation).lower()}: {p.retried}/{p.matched - p.excluded} retried, "
        f"{p.succeeded} succeeded, {p.failed_again} failed again, {p.running} running, "
        f"{p.pending} pending"
        + (f", {p.not_retried} not retried" if p.not_retried else "")
        + (f", {p.cancelled} cancelled" if p.cancelled else "")
        + (f", {p.interrupted} interrupted" if p.interrupted else "")
        + (f", {p.excluded} excluded (idempotency none)" if p.excluded else "")
    )


def print_operation(operation: opb.Operation) -> None:
    p = operation.progress
    if run_action_output.is_run_action(operation):
        _print_run_action(operation)
        return
    output.print_fields(
        [
            ("id", operation.id),
            ("kind", operation.kind),
            ("state", _state(operation)),
            ("created", f"{output.timestamp(operation.created_at)} by {operation.created_by}"),
            ("comment", operation.comment or "-"),
            ("selection", _selection(operation.selection)),
            ("rate", f"{operation.rate_per_second:g}/s"),
            ("include unsafe", "yes" if operation.include_unsafe else "no"),
            ("matched", p.matched),
            ("excluded", f"{p.excluded} (idempotency none)"),
            ("pending", p.pending),
            ("retried", p.retried),
            ("running", p.running),
            ("succeeded", p.succeeded),
            ("failed again", p.failed_again),
            ("not retried", p.not_retried),
            ("cancelled", p.cancelled),
            ("interrupted", p.interrupted),
            ("measured rate", _measured_rate(p)),
            (
                "finished",
                output.timestamp(operation.finished_at)
                if operation.HasField("finished_at")
                else "-",
            ),
        ]
        + (
            [("cancelled by", f"{operation.cancelled_by}: {operation.cancel_reason or '-'}")]
            if operation.cancelled_by
            else []
        )
    )
    print_failures(operation)


def _print_run_action(operation: opb.Operation) -> None:
    output.print_fields(
        [
            ("id", operation.id),
            ("kind", operation.kind),
            ("state", _state(operation)),
            ("created", f"{output.timestamp(operation.created_at)} by {operation.created_by}"),
            ("comment", operation.comment or "-"),
            *run_action_output.fields(operation),
            (
                "finished",
                output.timestamp(operation.finished_at)
                if operation.HasField("finished_at")
                else "-",
            ),
        ]
        + (
            [("cancelled by", f"{operation.cancelled_by}: {operation.cancel_reason or '-'}")]
            if operation.cancelled_by
            else []
        )
    )


def _outcomes(operation: opb.Operation) -> tuple[object, object, object]:
    """The list's acted, succeeded and failed columns: a run action acts, nothing more."""
    p = operation.progress
    if run_action_output.is_run_action(operation):
        return p.applied, "-", "-"
    return p.retried, p.succeeded, p.failed_again


def print_failures(operation: opb.Operation) -> None:
    if not operation.failures:
        return
    print("failed again (back in the dead letters):")
    output.print_table(
        ["count", "error type", "signature", "runs"],
        [
            (
                f.count,
                f.error_type,
                output.truncate(f.error_signature, 60),
                " ".join(f.sample_run_ids) + (" ..." if f.count > len(f.sample_run_ids) else ""),
            )
            for f in operation.failures
        ],
    )


def print_plan(plan: opb.RedrivePlan) -> None:
    seconds = plan.expected_duration.ToNanoseconds() / 1e9
    print(
        f"{plan.matched} dead letters match; {plan.to_redrive} to redrive at "
        f"{plan.rate_per_second:g}/s: about {run_action_output.duration(seconds)}"
    )
    if plan.unsafe:
        excluded = any(s.excluded for s in plan.step_types)
        print(
            f"{plan.unsafe} are steps declared idempotency none (they may have happened): "
            + ("left alone; --include-unsafe redrives them" if excluded else "included")
        )
    output.print_table(
        ["step type", "idempotency", "count", "redriven"],
        [
            (
                f"{s.step_type or '-'}@{s.step_version or '-'}",
                s.idempotency or "-",
                s.count,
                "no (idempotency none)" if s.excluded else "yes",
            )
            for s in plan.step_types
        ],
    )


def _items(
    client: OperationsClient, namespace: str, operation_id: str, state: int
) -> list[opb.OperationItem]:
    found: list[opb.OperationItem] = []
    token = ""
    while True:
        request = opb.ListOperationItemsRequest(
            namespace=namespace,
            operation_id=operation_id,
            state=state,  # type: ignore[arg-type]
            page_size=1000,
            page_token=token,
        )
        response = client.call(client.operations.ListOperationItems, request)
        found += response.items
        token = response.next_page_token
        if not token:
            return found


def _why(item: opb.OperationItem) -> str:
    if item.error_type:
        return " ".join(f"{item.error_type}: {item.error_message}".split())
    return item.reason or "-"


def _state(operation: opb.Operation) -> str:
    state = output.enum_name(opb.OperationState, operation.state)
    if state == "CANCELLED" and not operation.done:
        return "CANCELLING"
    return state


def _selection(selection: opb.RedriveSelection) -> str:
    f = selection.filter
    parts = [
        f"{name}={value}"
        for name, value in (
            ("workflow", f.workflow_name),
            ("workflow-version", f.workflow_version),
            ("step-type", f.step_type),
            ("step-version", f.step_version),
            ("error-type", f.error_type),
            ("signature", f.error_signature),
        )
        if value
    ]
    if selection.run_ids:
        parts.append(f"{len(selection.run_ids)} run(s)")
    if selection.limit:
        parts.append(f"limit {selection.limit}")
    return ", ".join(parts)


def _measured_rate(p: opb.OperationProgress) -> str:
    if p.retried < 2:
        return "-"
    span = (p.last_retry_at.ToNanoseconds() - p.first_retry_at.ToNanoseconds()) / 1e9
    return f"{(p.retried - 1) / span:.1f}/s" if span > 0 else "-"
