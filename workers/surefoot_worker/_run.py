"""The blocking entry point behind ``surefoot worker MODULE``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence

from . import _heap
from ._channel import ChannelSettings
from ._errors import StepDeclarationError, WorkerRejected
from ._loader import load_steps
from ._reconnect import DEFAULT_MAX_RECONNECT_DELAY
from ._step import StepDefinition
from ._worker import Worker


def run_worker(
    module: str | Sequence[StepDefinition],
    address: str,
    *,
    namespace: str = "default",
    concurrency: int = 100,
    worker_id: str | None = None,
    token: str = "",
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_server_name: str | None = None,
    max_reconnect_delay: float = DEFAULT_MAX_RECONNECT_DELAY,
) -> int:
    """Run a worker for a module's steps (or the given ones) until SIGTERM or SIGINT.

    The first signal drains gracefully; a second one stops at once. Once the control plane
    first welcomes the worker, one line ``worker <id> connected to <address>: steps a@1, b@1``
    is printed to stdout.

    Args:
        module: A dotted module name or a ``.py`` path, the current directory importable;
            or the step definitions themselves (steps built at run time).
        address: The control plane's gRPC address, ``host:port``.
        namespace: The namespace whose tasks the worker takes.
        concurrency: How many tasks run at once.
        worker_id: Shown in attempts; defaults to ``host:pid:random``.
        token: Bearer token of a worker credential ("" for none).
        tls_ca: PEM bundle of the server's CAs; turns TLS on.
        tls_cert: PEM client certificate for mutual TLS (with ``tls_key``).
        tls_key: PEM private key of ``tls_cert``.
        tls_server_name: The name the server's certificate is checked against.
        max_reconnect_delay: The longest wait, in seconds, between two attempts to reach
            the control plane after losing it (see :class:`Worker`).

    Returns:
        The process exit code: 0 after a clean drain, 1 if the module cannot be loaded, the
        control plane refuses the worker, or a second signal stopped it without draining;
        2 if the token, TLS or reconnect options are unusable.
    """
    # `surefoot worker mymodule` is run from the project folder, which the console script's
    # sys.path does not contain.
    if not logging.getLogger().handlers:
        # A CLI process: make the worker's connection lines visible unless the host
        # application has configured logging itself.
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    try:
        # Checked before the module is loaded: a bad option is not a bad module.
        ChannelSettings(
            token,
            tls_ca,
            tls_cert,
            tls_key,
            tls_server_name,
            max_reconnect_delay=max_reconnect_delay,
        ).checked()
    except ValueError as exc:
        _error(str(exc))
        return 2
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        steps = load_steps(module) if isinstance(module, str) else list(module)
        worker = Worker(
            address,
            steps,
            namespace=namespace,
            concurrency=concurrency,
            worker_id=worker_id,
            token=token,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_server_name=tls_server_name,
            max_reconnect_delay=max_reconnect_delay,
        )
    except (ImportError, ValueError, StepDeclarationError, SyntaxError) as exc:
        _error(f"cannot load steps from {_label(module)}: {exc}")
        return 1
    except Exception as exc:
        # A bug in the user's module at import time: one line, but with where it happened.
        _error(f"cannot load steps from {_label(module)}: {type(exc).__name__}: {exc}{_where(exc)}")
        return 1
    try:
        return asyncio.run(_serve(worker))
    except WorkerRejected as exc:
        _error(f"the control plane at {address} refused worker {worker.worker_id}: {exc}")
        return 1


async def _serve(worker: Worker) -> int:
    loop = asyncio.get_running_loop()
    run = asyncio.ensure_future(worker.run())
    background: set[asyncio.Future[None]] = set()
    forced = False

    def on_signal(signum: signal.Signals) -> None:
        nonlocal forced
        if not worker_is_draining[0]:
            worker_is_draining[0] = True
            _error(f"{signum.name} received: draining (again to stop at once)")
            drain = asyncio.ensure_future(worker.shutdown())
            background.add(drain)
            drain.add_done_callback(background.discard)
        else:
            forced = True
            run.cancel()

    worker_is_draining = [False]
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):
            pass  # Windows, or not the main thread: Ctrl-C then stops without draining.

    announce = asyncio.ensure_future(_announce(worker))
    try:
        await run
    except asyncio.CancelledError:
        if not forced:
            raise
        _error("stopped without draining")
        return 1
    finally:
        announce.cancel()
        for signum in installed:
            loop.remove_signal_handler(signum)
    return 0


async def _announce(worker: Worker) -> None:
    await worker.wait_until_connected()
    _heap.settle()  # this process is the worker's: what it made to start lives as long
    steps = ", ".join(f"{d.name}@{d.version}" for d in worker.steps)
    print(f"worker {worker.worker_id} connected to {worker.address}: steps {steps}", flush=True)


def _label(module: str | Sequence[StepDefinition]) -> str:
    return repr(module) if isinstance(module, str) else "the given steps"


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" ({last.filename}:{last.lineno})"


def _error(message: str) -> None:
    print(f"surefoot worker: {message}", file=sys.stderr, flush=True)
