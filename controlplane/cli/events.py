"""`surefoot events send`: deliver an external event to the runs that wait for it."""

from __future__ import annotations

import argparse

from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import common_pb2

from controlplane.cli import output
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.payloads import json_payload


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "events",
        help="send external events to waiting runs",
        description="A wait_event node waits for an event by name and correlation key.",
    )
    group.set_defaults(func=lambda args: output.print_group_help(group))
    commands = group.add_subparsers(title="commands", metavar="COMMAND")

    send = commands.add_parser(
        "send",
        help="send an event; print the runs it was delivered to",
        description="Deliver event NAME with correlation key KEY to every run waiting for "
        "it now, and print their ids, one a line. When no run waits yet, the event is kept "
        "and the first run that reaches a matching wait within its retention consumes it.",
    )
    send.add_argument("name", metavar="NAME", help="event name, as the wait_event node says")
    send.add_argument("--key", required=True, help="correlation key, as the run computes it")
    send.add_argument("--payload", metavar="JSON", help="event payload as JSON (default none)")
    send.add_argument(
        "--event-id",
        default="",
        metavar="ID",
        help="idempotency key of the send: sending the same id again delivers nothing more",
    )
    add_client_arguments(send)
    send.set_defaults(func=send_event)


def send_event(args: argparse.Namespace) -> int:
    request = apb.SendEventRequest(
        namespace=args.namespace,
        event_name=args.name,
        correlation_key=args.key,
        payload=json_payload(args.payload, None, "payload") or common_pb2.Payload(),
        event_id=args.event_id,
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.SendEvent, request)
    if args.json:
        output.print_json(response)
        return 0
    for run_id in response.delivered_to:
        print(run_id)
    if response.stored:
        print(f"stored: no run waits yet (event id {response.event_id})")
    return 0
