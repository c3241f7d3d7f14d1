"""`surefoot`: the command line of the Surefoot workflow engine.

Builds the parser from one module per command group and turns every failure into one line
on stderr and a documented exit code; a traceback is never what a user sees.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from collections.abc import Sequence

from controlplane.cli import (
    approvals,
    audit,
    completion,
    connectors,
    console,
    credentials,
    deadletters,
    definitions,
    events,
    operations,
    output,
    runs,
    servers,
    stats,
    workers,
)
from controlplane.cli import eval as evaluations
from controlplane.cli.errors import EXIT_INTERRUPTED, EXIT_REFUSED, EXIT_USAGE, CliError

EPILOG = """\
exit codes:
  0    success
  1    the control plane refused the request (or an unexpected error)
  2    bad arguments or bad local input; nothing was sent
  3    the control plane cannot be reached, or did not answer within --timeout
       (a change may then still have been made: repeat it with the same request id)
  130  interrupted (Ctrl-C)

environment:
  SUREFOOT_ADDRESS       control plane address (default 127.0.0.1:7233)
  SUREFOOT_NAMESPACE     namespace (default "default")
  SUREFOOT_TOKEN         bearer token of the client commands (who you are)
  SUREFOOT_TIMEOUT       deadline of each call in seconds (default 10; --timeout)
  SUREFOOT_AUTH_FILE     credentials file of `server` (hashed tokens, certificate subjects)
  SUREFOOT_DATABASE_URL  database of `server`, `db upgrade` and `bench`
  SUREFOOT_DEBUG=1       show the traceback of an unexpected error
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="surefoot",
        description="Surefoot: durable workflows whose every step is checkpointed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"surefoot {package_version()}")
    parser.set_defaults(func=None)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    definitions.register_commands(subparsers)
    runs.register_commands(subparsers)
    approvals.register_commands(subparsers)
    deadletters.register_commands(subparsers)
    operations.register_commands(subparsers)
    events.register_commands(subparsers)
    evaluations.register_commands(subparsers)
    audit.register_commands(subparsers)
    servers.register_commands(subparsers)
    credentials.register_commands(subparsers)
    connectors.register_commands(subparsers)
    console.register_commands(subparsers)
    workers.register_commands(subparsers)
    stats.register_commands(subparsers)
    completion.register_commands(subparsers, build_parser)
    return parser


def package_version() -> str:
    """The installed distribution's version: the one `pip show surefoot` reports."""
    try:
        return importlib.metadata.version("surefoot")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command and returns its exit code (argparse exits 2 itself on bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    output.select_format(args)
    try:
        return int(args.func(args))
    except CliError as exc:
        _report(exc.message, *exc.details)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `surefoot runs list | head`: the reader left; Python would complain at exit when
        # flushing stdout, so point it at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_REFUSED
    except Exception as exc:
        if os.environ.get("SUREFOOT_DEBUG") == "1":
            raise
        _report(f"{type(exc).__name__}: {exc}")
        return EXIT_REFUSED


def _report(message: str, *details: str) -> None:
    # One line, whatever the message holds: scripts and log scrapers read it line by line.
    print("error: " + " ".join(message.split()), file=sys.stderr)
    for line in details:
        print(line, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
