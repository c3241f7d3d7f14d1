"""`surefoot workers list`: the workers connected to any control plane of the database, a
page at a time like every list, and the step types whose queued tasks none of them can take."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from surefoot.v1 import worker_admin_service_pb2 as wpb
from surefoot.v1 import worker_admin_service_pb2_grpc

from controlplane.cli import output
from controlplane.cli.arguments import page_size
from controlplane.cli.channels import Connection, connection_from_args
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.errors import EXIT_OK


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "workers",
        help="the workers connected to the control planes",
        description="Worker processes connected to any control plane of the database.",
    )
    group.set_defaults(func=lambda args: output.print_group_help(group))
    commands = group.add_subparsers(title="commands", metavar="COMMAND")
    listing = commands.add_parser(
        "list",
        help="connected workers, and queued step types no worker can take",
        description="Every worker stream connected to a control plane of the database, in "
        "the namespace, by worker id a page at a time (--limit, --page-token): its step "
        "types and versions, the credit it granted, the tasks it holds, its latest "
        "heartbeat, and since when it is connected (-o wide adds when it last sent "
        "anything, and its stream's id). Then the step types with tasks waiting for a "
        "worker that no connected worker can take (their queue does not move until one "
        "connects). A control plane that stops confirming its streams (killed, crashed, "
        "cut off from the database) has them dropped from the list after about a lease's "
        "length.",
    )
    listing.add_argument(
        "--include-stale",
        action="store_true",
        help="also the streams of control planes that stopped confirming them (last hour)",
    )
    listing.add_argument(
        "--limit",
        type=page_size,
        default=0,
        metavar="N",
        help="at most N workers, by worker id (1-1000; default 100)",
    )
    listing.add_argument(
        "--page-token", default="", metavar="T", help="continue a previous listing"
    )
    add_client_arguments(listing)
    listing.set_defaults(func=list_workers)


class WorkerAdminClient(ControlPlaneClient):
    def __init__(self, connection: Connection, namespace: str) -> None:
        super().__init__(connection, namespace)
        self.workers = worker_admin_service_pb2_grpc.WorkerAdminServiceStub(self._channel)


def list_workers(args: argparse.Namespace) -> int:
    client = WorkerAdminClient(connection_from_args(args), args.namespace)
    with client:
        page = client.call(
            client.workers.ListWorkers,
            wpb.ListWorkersRequest(
                namespace=client.namespace,
                page_size=args.limit,
                page_token=args.page_token,
                include_stale=args.include_stale,
            ),
        )
        workers = list(page.workers)
        queued = client.call(
            client.workers.ListQueuedStepTypes,
            wpb.ListQueuedStepTypesRequest(namespace=args.namespace),
        ).step_types
    if args.json:
        output.print_json(
            {
                "workers": [output.message_dict(w) for w in workers],
                "queued_step_types": [output.message_dict(q) for q in queued],
                "next_page_token": page.next_page_token,
            }
        )
        return EXIT_OK
    if workers:
        output.print_table(
            [
                "worker",
                "step types",
                "credit",
                "in flight",
                "last heartbeat",
                "connected since",
                "control plane",
                "state",
                "last heard",
                "session",
            ],
            [
                (
                    w.worker_id,
                    step_types_text(w.step_types),
                    w.credit,
                    w.in_flight,
                    output.timestamp(w.last_heartbeat) or "-",
                    output.timestamp(w.connected_since),
                    w.control_plane,
                    worker_state(w),
                    output.timestamp(w.last_heard) or "-",
                    w.session_id,
                )
                for w in workers
            ],
            wide_from=8,
        )
    else:
        print(f"no workers connected in namespace {args.namespace!r}")
    uncovered = [q for q in queued if q.capable_workers == 0]
    if uncovered:
        print()
        print("queued step types no connected worker can take:")
        output.print_table(
            ["step type", "version", "queued", "oldest since", "connected versions"],
            [
                (
                    q.name,
                    q.version or "any",
                    q.queued,
                    output.timestamp(q.oldest_queued_since),
                    ", ".join(q.connected_versions) or "none",
                )
                for q in uncovered
            ],
        )
    # On stderr, as every list's, so that a pipe gets the tables alone.
    if page.next_page_token:
        print(f"next page: --page-token {page.next_page_token}", file=sys.stderr)
    return EXIT_OK


def step_types_text(step_types: Iterable[wpb.WorkerStepType]) -> str:
    """`charge-card@v1,v2 refund@v1`: each step type once, with its versions."""
    versions: dict[str, list[str]] = {}
    for declared in step_types:
        versions.setdefault(declared.name, []).append(declared.version)
    return " ".join(f"{name}@{','.join(v)}" for name, v in sorted(versions.items()))


def worker_state(worker: wpb.ConnectedWorker) -> str:
    if worker.stale:
        return "stale"
    return "draining" if worker.draining else "connected"
