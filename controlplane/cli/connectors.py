"""`surefoot connectors ...`: list the built-in connectors, run the worker that executes them."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import Any

from controlplane.cli import output
from controlplane.cli.arguments import whole_number
from controlplane.cli.channels import add_connection_arguments, connection_from_args
from controlplane.cli.client import add_address_arguments
from controlplane.cli.errors import usage_error


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "connectors",
        help="the built-in connectors: list them, run their worker",
        description="Connectors are step types Surefoot implements (surefoot.ai, "
        "surefoot.http, surefoot.postgres, surefoot.smtp, surefoot.webhook), run by "
        "`connectors worker`.",
    )
    group.set_defaults(func=lambda args: output.print_group_help(group))
    commands = group.add_subparsers(title="commands", metavar="COMMAND")

    list_ = commands.add_parser(
        "list",
        help="the connectors and their input fields",
        description="Each connector's step type, version, idempotency and summary, then "
        "its input fields. Needs no server.",
    )
    # -o json|yaml: the registry as one document, with the full input JSON Schemas.
    output.add_output_arguments(list_)
    list_.set_defaults(func=list_connectors)

    worker = commands.add_parser(
        "worker",
        help="run the worker that executes connector steps",
        description="Connect to the control plane and run every connector. Secrets named "
        "in inputs as ${secret:NAME} are read here, from SUREFOOT_SECRET_<NAME> or "
        "--secrets-file, as are the API keys (api_key_secret) of ai nodes' model connections; "
        "outcomes of calls that must not repeat are recorded by the "
        "control plane, so the worker needs its address (and --token on a server with "
        "--auth-file), never the database.",
    )
    add_address_arguments(worker)
    # The token of a worker credential, for its stream and the call outcomes it records.
    add_connection_arguments(worker)
    worker.add_argument(
        "--secrets-file",
        default=os.environ.get("SUREFOOT_SECRETS_FILE") or None,
        metavar="FILE",
        help='YAML mapping secret names to values, `api_token: "..."`; '
        "SUREFOOT_SECRET_<NAME> variables win over it (env SUREFOOT_SECRETS_FILE)",
    )
    worker.add_argument(
        "--concurrency",
        type=whole_number(),
        metavar="N",
        help="connector calls run at once (default: the SDK's)",
    )
    worker.set_defaults(func=run_connector_worker)


def list_connectors(args: argparse.Namespace) -> int:
    from surefoot_connectors import all_connectors

    connectors = all_connectors()
    if args.json:
        output.print_json({"connectors": [c.to_json() for c in connectors]})
        return 0
    output.print_table(
        ["name", "version", "idempotency", "summary"],
        [(c.name, c.version, c.idempotency, c.summary) for c in connectors],
    )
    for connector in connectors:
        print()
        print(f"{connector.name}@{connector.version} input:")
        schema = connector.input_schema
        required = set(schema.get("required", ()))
        rows = [
            (name, field_type(field), "yes" if name in required else "no", _described(field))
            for name, field in schema.get("properties", {}).items()
        ]
        for line in output.table(["field", "type", "required", "description"], rows):
            print(f"  {line}")
    return 0


def field_type(schema: Mapping[str, Any]) -> str:
    """A field's JSON Schema type in a few characters: `string`, `array of string`, `GET|POST`."""
    if "enum" in schema:
        return "|".join(str(value) for value in schema["enum"])
    kind = schema.get("type")
    if kind is None:
        return "any"
    if isinstance(kind, list):
        return "|".join(kind)
    items = schema.get("items")
    if kind == "array" and isinstance(items, Mapping) and "type" in items:
        return f"array of {field_type(items)}"
    values = schema.get("additionalProperties")
    if kind == "object" and isinstance(values, Mapping) and "type" in values:
        return f"object of {field_type(values)}"
    return str(kind)


def _described(field: Mapping[str, Any]) -> str:
    description = str(field.get("description", ""))
    if "default" in field:
        description += f" (default {json.dumps(field['default'])})"
    return description


def run_connector_worker(args: argparse.Namespace) -> int:
    from surefoot_connectors.secrets import Secrets, SecretsFileError
    from surefoot_connectors.worker import run_connector_worker as run

    connection = connection_from_args(args)
    try:
        secrets = Secrets.load(file=args.secrets_file)
    except SecretsFileError as exc:
        raise usage_error(str(exc)) from None
    return run(
        connection.address,
        namespace=args.namespace,
        secrets=secrets,
        token=connection.token,
        concurrency=args.concurrency,
        tls_ca=connection.tls_ca,
        tls_cert=connection.tls_cert,
        tls_key=connection.tls_key,
        tls_server_name=connection.tls_server_name,
    )
