"""``surefoot-worker MODULE`` (or ``python -m surefoot_worker MODULE``): run a module's steps.

The same as ``surefoot worker MODULE``, for a machine that installed only the SDK.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

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


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the worker until SIGTERM or SIGINT; the exit code."""
    parser = argparse.ArgumentParser(
        prog="surefoot-worker",
        description="Connect to the control plane and run the steps MODULE defines.",
    )
    parser.add_argument("module", metavar="MODULE", help="dotted module name or .py path")
    parser.add_argument(
        "--address",
        default=os.environ.get("SUREFOOT_ADDRESS", DEFAULT_ADDRESS),
        metavar="HOST:PORT",
        help="control plane address (env SUREFOOT_ADDRESS; default %(default)s)",
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
    args = parser.parse_args(argv)
    # Only what the user chose is passed, so the SDK's own defaults apply otherwise.
    options = {"concurrency": args.concurrency} if args.concurrency else {}
    return run_worker(args.module, args.address, namespace=args.namespace, **options)


if __name__ == "__main__":
    raise SystemExit(main())
