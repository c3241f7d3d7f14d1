"""`surefoot audit verify RUN...|--all`: recompute runs' hash chains, name what was altered.

Exit code 1 when any run's history is not what the control plane wrote, with one line per
such run naming the first event that was edited, inserted or deleted.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from google.protobuf import json_format
from surefoot.v1 import audit_service_pb2 as apb
from surefoot.v1 import audit_service_pb2_grpc

from controlplane.cli import output
from controlplane.cli.channels import Connection, connection_from_args
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.errors import EXIT_OK, EXIT_REFUSED, usage_error

# Runs asked for per call with --all.
PAGE = 200
# Run ids given on the command line, per call.
MAX_RUN_IDS = 1000


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "audit",
        help="verify that runs' histories are what the control plane wrote",
        description="Every history event carries a hash over the one before it (a chain per "
        "run), so an edited, inserted or deleted event breaks its run's chain.",
    )
    group.set_defaults(func=lambda args: output.print_group_help(group))
    commands = group.add_subparsers(title="commands", metavar="COMMAND")
    verify = commands.add_parser(
        "verify",
        help="recompute the hash chains of runs",
        description="Recompute the hash chains of the given runs (or of every run of the "
        "namespace with --all). Prints one line per run whose history was altered, naming "
        "the first event that was edited, inserted or deleted, and exits 1 if there is any. "
        "The head hash printed for an intact run, kept elsewhere, also shows a history "
        "rewritten whole later.",
    )
    verify.add_argument("run_ids", nargs="*", metavar="RUN", help="run ids")
    verify.add_argument("--all", action="store_true", help="every run of the namespace")
    add_client_arguments(verify)
    verify.set_defaults(func=verify_runs)


class AuditClient(ControlPlaneClient):
    def __init__(self, connection: Connection, namespace: str) -> None:
        super().__init__(connection, namespace)
        self.audit = audit_service_pb2_grpc.AuditServiceStub(self._channel)


def verify_runs(args: argparse.Namespace) -> int:
    if bool(args.run_ids) == bool(args.all):
        raise usage_error("give run ids or --all (one of them)")
    altered = checked = 0
    documents = []
    client = AuditClient(connection_from_args(args), args.namespace)
    with client:
        for verification in _verifications(client, args):
            checked += 1
            if args.json:
                documents.append(json_format.MessageToDict(verification))
            elif not verification.ok:
                print(altered_line(verification))
            elif not args.all:
                print(
                    f"run {verification.run_id}: intact ({verification.events} events, "
                    f"head {verification.head_hash})"
                )
            altered += not verification.ok
    if args.json:
        output.print_json(documents)
    elif args.all:
        print(f"{checked} runs verified: {altered or 'none'} altered")
    return EXIT_REFUSED if altered else EXIT_OK


def altered_line(verification: apb.RunVerification) -> str:
    """What `audit verify` (and the console) say of a run whose chain does not verify."""
    how = output.enum_name(apb.ChainFault, verification.fault).lower()
    return (
        f"run {verification.run_id}: history altered at seq {verification.seq} ({how}): "
        f"{verification.detail}"
    )


def _verifications(client: AuditClient, args: argparse.Namespace) -> Iterator[apb.RunVerification]:
    if not args.all:
        ids = list(dict.fromkeys(args.run_ids))
        for start in range(0, len(ids), MAX_RUN_IDS):
            request = apb.VerifyRunsRequest(
                namespace=args.namespace, run_ids=ids[start : start + MAX_RUN_IDS]
            )
            yield from client.call(client.audit.VerifyRuns, request).runs
        return
    token = ""
    while True:
        request = apb.VerifyRunsRequest(
            namespace=args.namespace, all=True, page_size=PAGE, page_token=token
        )
        response = client.call(client.audit.VerifyRuns, request)
        yield from response.runs
        token = response.next_page_token
        if not token:
            return
