"""`surefoot console`: the terminal console, with the options of every client command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from controlplane.cli.channels import connection_from_args
from controlplane.cli.client import add_client_arguments
from controlplane.cli.errors import usage_error


def register_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "console",
        help="open the terminal console: runs, history, dead letters, approvals",
        description="Open the terminal console: runs and their history, dead letters to "
        "retry, edit, skip or abandon, approvals to decide. Changes are made as --token.",
    )
    add_client_arguments(parser)
    parser.add_argument(
        "--readonly",
        action="store_true",
        help="look, change nothing: every action that writes is disabled (said in the header)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help='console settings (key remapping, [keys] "action.id" = "key"); default '
        "~/.config/surefoot/console.toml when it exists",
    )
    # --json comes with the client options but means nothing to an interactive app: accepted,
    # not advertised.
    for action in parser._actions:
        if action.dest == "json":
            action.help = argparse.SUPPRESS
    parser.set_defaults(func=_console)


def _console(args: argparse.Namespace) -> int:
    # Textual is imported only when the console opens: the other commands start faster.
    from console.app import run_console
    from console.keys import KeymapError, default_config_path, read_keymap

    # The connection and the config are checked (token, TLS files, keys) before the screen
    # takes over the terminal: a mistake is one line, not a broken screen.
    connection = connection_from_args(args)
    connection.credentials()
    try:
        if args.config:
            keymap = read_keymap(Path(args.config), required=True)
        else:
            keymap = read_keymap(default_config_path())
    except KeymapError as exc:
        raise usage_error(str(exc)) from None
    return run_console(connection, args.namespace, readonly=args.readonly, keymap=keymap)
