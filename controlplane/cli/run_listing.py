"""`surefoot runs list`: the runs a filter selects, newest first, a page at a time with how
many there are, or live with `--watch` (WatchRuns), as `kubectl get --watch` follows a list.

Filters: --workflow, --status, --since/--until (an age such as 2h, or an RFC 3339 time),
--id-prefix. The table says "N of TOTAL runs" on stderr, like "next page", so that a pipe
gets the table alone. With --watch the table of the matching runs comes first, then one line
per change as it commits ("left" when a run moved out of the statuses asked for); -o json
prints each message of the stream as a line of JSON (JSON Lines), -o yaml as a document.
A lost stream is opened again; its first message (the table again) replaces what was shown.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli import arguments, output
from controlplane.cli.arguments import page_size
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.definitions import split_ref
from controlplane.cli.errors import EXIT_INTERRUPTED, usage_error

HEADERS = ("id", "workflow", "status", "created", "updated", "current node", "waiting for")
# Columns of a change line: changes come one by one, so the widths cannot be fitted to the
# widest cell as a table's are; wide enough for the usual values.
_CHANGE_WIDTHS = (7, 36, 24, 15, 20)
RECONNECT_PATIENCE_SECONDS = 60.0
RECONNECT_PAUSES = (0.1, 0.25, 0.5, 1.0)


def add_list_command(commands: argparse._SubParsersAction, status_type: object) -> None:
    """`runs list` and its options; `status_type` parses a run status name."""
    list_ = commands.add_parser(
        "list",
        help="list runs, newest first (-w: follow them live)",
        description="List the runs a filter selects, newest first, and how many there are. "
        "With --watch, the list first, then each change to a run's status, current node "
        "or what it waits for as it happens, until Ctrl-C.",
    )
    list_.add_argument("--workflow", metavar="NAME[@VERSION]", help="only runs of this workflow")
    list_.add_argument(
        "--status",
        nargs="+",
        action="extend",
        type=status_type,
        default=[],
        metavar="S",
        help="only runs in these statuses (running, waiting, needs_attention, compensating, "
        "completed, failed, compensated, cancelled)",
    )
    list_.add_argument(
        "--since",
        type=point_in_time,
        metavar="AGE|TIME",
        help="only runs created at or after TIME, or AGE ago (90s, 15m, 2h, 7d, 1w)",
    )
    list_.add_argument(
        "--until",
        type=point_in_time,
        metavar="AGE|TIME",
        help="only runs created before TIME, or before AGE ago",
    )
    list_.add_argument(
        "--id-prefix",
        default="",
        metavar="P",
        help="only runs whose id starts with P (at least 4 characters)",
    )
    list_.add_argument(
        "--limit",
        type=page_size,
        default=0,
        metavar="N",
        help="at most N runs (1-1000; default 100); with --watch, in the first table",
    )
    list_.add_argument("--page-token", default="", metavar="T", help="continue a previous listing")
    list_.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="after the list, print each change as it happens, until Ctrl-C",
    )
    add_client_arguments(list_)
    list_.set_defaults(func=list_runs)


def point_in_time(text: str) -> Timestamp:
    """An argparse `type`: an age before now ("2h") or a time (RFC 3339; without an offset,
    UTC)."""
    try:
        return arguments.point_in_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an age (90s, 15m, 2h, 7d, 1w) nor a time (2026-05-01T12:00Z)"
        ) from None


def run_filter(args: argparse.Namespace) -> ws.RunFilter:
    name, version = split_ref(args.workflow) if args.workflow else ("", "")
    found = ws.RunFilter(
        workflow_name=name,
        workflow_version=version,
        statuses=args.status,
        run_id_prefix=args.id_prefix,
    )
    if args.since is not None:
        found.created_after.CopyFrom(args.since)
    if args.until is not None:
        found.created_before.CopyFrom(args.until)
    return found


def list_runs(args: argparse.Namespace) -> int:
    if args.watch:
        if args.page_token:
            raise usage_error("--watch follows the list from its newest runs: no --page-token")
        return watch_runs(args)
    selected = run_filter(args)
    request = ws.ListRunsRequest(
        namespace=args.namespace,
        workflow_name=selected.workflow_name,
        workflow_version=selected.workflow_version,
        statuses=selected.statuses,
        page_size=args.limit,
        page_token=args.page_token,
        run_id_prefix=selected.run_id_prefix,
    )
    if selected.HasField("created_after"):
        request.created_after.CopyFrom(selected.created_after)
    if selected.HasField("created_before"):
        request.created_before.CopyFrom(selected.created_before)
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.ListRuns, request)
    if args.json:
        output.print_json(response)
        return 0
    if not response.runs:
        print("no runs")
    print_runs(response.runs)
    # On stderr so that `surefoot runs list | ...` pipes only the table.
    count_line(len(response.runs), response.total)
    if response.next_page_token:
        print(f"next page: --page-token {response.next_page_token}", file=sys.stderr)
    return 0


def print_runs(runs: Sequence[run_pb2.Run]) -> None:
    output.print_table(HEADERS, [_cells(r) for r in runs], wide_from=5)


def count_line(shown: int, total: int) -> None:
    """ "N of TOTAL runs" (stderr); nothing from a server that does not count (total 0)."""
    if total and total >= shown:
        print(f"{shown} of {total} runs", file=sys.stderr)


def _cells(run: run_pb2.Run) -> tuple[object, ...]:
    return (
        run.id,
        f"{run.workflow_name}@{run.workflow_version}",
        output.enum_name(run_pb2.RunStatus, run.status),
        output.timestamp(run.created_at),
        output.timestamp(run.updated_at),
        run.current_node or "-",
        run.waiting_for or "-",
    )


# -- --watch ------------------------------------------------------------------------------


def watch_runs(args: argparse.Namespace) -> int:
    """Follow WatchRuns until Ctrl-C (exit 130); a refusal is an error like any call's."""
    request = ws.WatchRunsRequest(
        namespace=args.namespace, filter=run_filter(args), initial_limit=args.limit
    )
    printer = output.print_stream_item if args.json else ChangePrinter()
    with ControlPlaneClient.from_args(args) as client:
        try:
            for message in _messages(client, request):
                printer(message)
        except KeyboardInterrupt:
            print("stopped watching (nothing was changed)", file=sys.stderr)
            return EXIT_INTERRUPTED
    return 0


def _messages(
    client: ControlPlaneClient, request: ws.WatchRunsRequest
) -> Iterator[ws.WatchRunsResponse]:
    """The stream's messages; a stream lost after it had worked is opened again (its first
    message is then a new table), for up to RECONNECT_PATIENCE_SECONDS."""
    lost_at: float | None = None
    pauses: Iterator[float] = iter(())
    received = False
    while True:
        stream = client.workflows.WatchRuns(request, metadata=client.connection.metadata)
        try:
            for message in stream:
                received, lost_at = True, None
                yield message
            return
        except KeyboardInterrupt:
            stream.cancel()
            raise
        except grpc.RpcError as exc:
            if not received or stream.code() != grpc.StatusCode.UNAVAILABLE:
                raise client._translate(exc) from exc
            now = time.monotonic()
            if lost_at is None:
                lost_at, pauses = now, iter(RECONNECT_PAUSES)
                print("lost the stream; reconnecting", file=sys.stderr)
            if now - lost_at > RECONNECT_PATIENCE_SECONDS:
                raise client._translate(exc) from exc
        time.sleep(next(pauses, RECONNECT_PAUSES[-1]))


class ChangePrinter:
    """The first message as the list's table, then a line per change:
    `UPDATED|LEFT  ID  WORKFLOW  STATUS  CURRENT NODE  WAITING FOR`."""

    def __init__(self) -> None:
        self._header_printed = False
        self._total: int | None = None

    def __call__(self, message: ws.WatchRunsResponse) -> None:
        if message.initial:
            if self._total is not None:
                print("the list again (the stream started over):", file=sys.stderr)
            runs = [change.run for change in message.changes]
            if not runs:
                print("no runs yet")
            print_runs(runs)
            count_line(len(runs), message.total)
            self._header_printed = False
        else:
            for change in message.changes:
                if not self._header_printed:
                    print(_change_line(("change", *HEADERS[:3], "current node", "waiting for")))
                    self._header_printed = True
                print(_change_line(_change_cells(change)))
            if message.total != self._total:
                print(f"matching runs: {message.total}", file=sys.stderr)
        self._total = message.total
        sys.stdout.flush()


def _change_cells(change: ws.RunChange) -> tuple[object, ...]:
    run = change.run
    return (
        "left" if change.left_filter else "updated",
        run.id,
        f"{run.workflow_name}@{run.workflow_version}",
        output.enum_name(run_pb2.RunStatus, run.status),
        run.current_node or "-",
        run.waiting_for or "-",
    )


def _change_line(cells: tuple[object, ...]) -> str:
    texts = [str(c) for c in cells]
    padded = [t.upper() if cells[0] == "change" else t for t in texts]
    columns = [c.ljust(w) for c, w in zip(padded, _CHANGE_WIDTHS, strict=False)]
    return "  ".join([*columns, *padded[len(_CHANGE_WIDTHS) :]]).rstrip()
