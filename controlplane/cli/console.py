"""`surefoot console`: the terminal console, with the options of every client command."""

from __future__ import annotations

import argparse
from typing import Any

from controlplane.cli.channels import connection_from_args
from controlplane.cli.client import add_client_arguments


def register_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "console",
        help="open the terminal console: runs, history, dead letters, approvals",
        description="Open the terminal console: runs and their history, dead letters to "
        "retry, edit, skip or abandon, approvals to decide. Changes are made as --token.",
    )
    add_client_arguments(parser)
    # --json comes with the client options but means nothing to an interactive app: accepted,
    # not advertised.
    for action in parser._actions:
        if action.dest == "json":
            action.help = argparse.SUPPRESS
    parser.set_defaults(func=_console)


def _console(args: argparse.Namespace) -> int:
    # Textual is imported only when the console opens: the other commands start faster.
    from console.app import run_console

    # The connection is checked (token, TLS files) before the screen takes over the terminal.
    connection = connection_from_args(args)
    connection.credentials()
    return run_console(connection, args.namespace)
