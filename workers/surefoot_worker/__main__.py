"""``surefoot-worker MODULE`` (or ``python -m surefoot_worker MODULE``): run a module's steps.

The same as ``surefoot worker MODULE``, for a machine that installed only the SDK.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from ._reconnect import (
    DEFAULT_MAX_RECONNECT_DELAY,
    MAX_MAX_RECONNECT_DELAY,
    MIN_MAX_RECONNECT_DELAY,
    check_max_reconnect_delay,
)
from ._run import run_worker

DEFAULT_ADDRESS = "127.0.0.1:7233"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _reconnect_delay(text: str) -> float:
    try:
        return check_max_reconnect_delay(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds from {MIN_MAX_RECONNECT_DELAY:g} to "
            f"{MAX_MAX_RECONNECT_DELAY:g}, got {text!r}"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the worker until SIGTERM or SIGINT; the exit code."""
    parser = argparse.ArgumentParser(
        prog="surefoot-worker",
        description="Connect to the control plane and run the steps MODULE defines.",
    )
    parser.add_argument("module", metavar="MODULE", help="dotted module name or .py path")
    parser.add_argument(
        "--address",
        action="append",
        metavar="HOST:PORT",
        help="control plane address; repeated or comma-separated for several control planes "
        "(the worker fails over between them) (env SUREFOOT_ADDRESS; default "
        f"{DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("SUREFOOT_NAMESPACE", "default"),
        help="namespace (env SUREFOOT_NAMESPACE; default %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        metavar="N",
        help="tasks run at once (default: the SDK's)",
    )
    add_reconnect_argument(parser)
    add_connection_arguments(parser)
    args = parser.parse_args(argv)
    # Only what the user chose is passed, so the SDK's own defaults apply otherwise.
    options: dict[str, Any] = {"concurrency": args.concurrency} if args.concurrency else {}
    if args.max_reconnect_delay is not None:
        options["max_reconnect_delay"] = args.max_reconnect_delay
    return run_worker(
        args.module,
        ",".join(args.address or [os.environ.get("SUREFOOT_ADDRESS", DEFAULT_ADDRESS)]),
        namespace=args.namespace,
        token=args.token,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_server_name=args.tls_server_name,
        **options,
    )


def add_reconnect_argument(parser: argparse.ArgumentParser) -> None:
    """--max-reconnect-delay (`surefoot worker` has the same option, checked by the SDK)."""
    parser.add_argument(
        "--max-reconnect-delay",
        type=_reconnect_delay,
        metavar="SECONDS",
        help="longest wait between two attempts to reach a lost control plane: the waits "
        "start at 0.1 s and double up to it, so one that is back is reached within about "
        f"that long (default {DEFAULT_MAX_RECONNECT_DELAY:g}; {MIN_MAX_RECONNECT_DELAY:g} "
        f"to {MAX_MAX_RECONNECT_DELAY:g})",
    )


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """--token and the --tls-* options, defaulting to their SUREFOOT_* variables."""
    parser.add_argument(
        "--token",
        # Never shown by --help: the default comes from the environment and is a secret.
        default=os.environ.get("SUREFOOT_TOKEN", ""),
        metavar="TOKEN",
        help="bearer token of a worker credential, sent as `authorization: Bearer TOKEN` "
        "(env SUREFOOT_TOKEN; needed on a server with credentials)",
    )
    tls = parser.add_argument_group("TLS (without --tls-ca the connection is plaintext)")
    for option, variable, text in (
        (
            "--tls-ca",
            "SUREFOOT_TLS_CA",
            "PEM bundle of the CAs that sign the server's certificate; turns TLS on",
        ),
        (
            "--tls-cert",
            "SUREFOOT_TLS_CERT",
            "PEM client certificate, for a server that requires mutual TLS",
        ),
        ("--tls-key", "SUREFOOT_TLS_KEY", "PEM private key of --tls-cert"),
        (
            "--tls-server-name",
            "SUREFOOT_TLS_SERVER_NAME",
            "name to check the server's certificate against, instead of the address's host",
        ),
    ):
        tls.add_argument(
            option,
            default=os.environ.get(variable) or None,
            metavar="NAME" if option == "--tls-server-name" else "PATH",
            help=f"{text} (env {variable})",
        )


if __name__ == "__main__":
    raise SystemExit(main())
