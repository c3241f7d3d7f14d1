"""`surefoot dev`: a complete local Surefoot in one process, for trying it and for demos.

A control plane on a SQLite file, the example workflows registered (`onboarding`, the saga
with a manager approval; `trial`, with an event wait, a switch, a parallel and a sleep;
`orders`; and `support`, whose `ai` node classifies a ticket through a local scripted model,
controlplane/dev_model.py, so it needs no network and no key), and one worker running in
the same event loop for their steps and for the built-in connectors (`surefoot.http`,
`surefoot.ai` and the others; secrets from `SUREFOOT_SECRET_<NAME>`, call outcomes recorded
through the control plane in the same SQLite file). Nothing here is
special-cased in the server: the worker and the registration talk to it over gRPC like any
other client, so what works here works against a real deployment. The one dev-only setting
is who the caller is: without a bearer token it is the OS user, so that `surefoot approvals
approve` works from the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import getpass
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from surefoot.v1 import (
    definition_pb2,
    evaluation_service_pb2,
    evaluation_service_pb2_grpc,
    workflow_service_pb2_grpc,
)
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.dev_model import ai_tour_lines, start_dev_model_for

if TYPE_CHECKING:
    from surefoot_worker import Worker

    from controlplane.model_server import ModelServer

EXAMPLE_STEPS_MODULES = (
    "surefoot_worker.examples.onboarding",
    "surefoot_worker.examples.orders",
    # orders@2's fraud check, so that the README's versions example runs on the dev worker.
    "surefoot_worker.examples.fraud",
    # support's assign-ticket; its `ai` node runs on the built-in connector surefoot.ai.
    "surefoot_worker.examples.support",
)
EXAMPLE_DEFINITION_FILES = ("onboarding.yaml", "trial.yaml", "orders.yaml", "support.yaml")
DEFAULT_ADDRESS = "127.0.0.1:7233"
SERVER_GRACE_SECONDS = 5.0
# How long in-flight example steps get to finish after Ctrl-C before they are handed back (the
# server gives them to the next worker, so this bounds waiting, not correctness).
WORKER_GRACE_SECONDS = 10.0


def run_dev(data_dir: str = ".surefoot", listen: str = "127.0.0.1:7233") -> int:
    """Runs until SIGINT or SIGTERM; returns the process exit code.

    Restarting on the same data_dir reuses its database, so runs in flight resume.
    """
    data_path = Path(data_dir).expanduser().resolve()
    try:
        data_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(f"cannot create the data directory {data_path}: {exc.strerror or exc}")
    problem = _port_problem(listen)
    if problem:
        return _fail(f"cannot listen on {listen}: {problem}")
    # Warnings and errors of the server and the worker still reach the terminal; their
    # INFO chatter would bury the banner.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return asyncio.run(_serve(data_path / "surefoot.db", listen))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


async def _serve(database: Path, listen: str) -> int:
    from surefoot_connectors import ConnectorRuntime, OutcomeRecords, connector_steps
    from surefoot_connectors.redaction import redact_logs
    from surefoot_connectors.secrets import Secrets
    from surefoot_worker import Worker, load_steps

    from controlplane.server import ControlPlane, PortInUse, ServerConfig

    user = _os_user()
    database_url = f"sqlite+pysqlite:///{database}"
    # The connectors run in this process, so its log lines must not show their secrets.
    secrets = Secrets.load()
    redact_logs(secrets.redactor())
    control_plane = ControlPlane(
        ServerConfig(database_url=database_url, listen=listen, local_user=user)
    )
    try:
        port = await control_plane.start()
    except PortInUse as exc:
        return _fail(str(exc))
    address = f"{_connect_host(listen)}:{port}"
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    worker: Worker | None = None
    worker_task: asyncio.Task[Any] | None = None
    outcomes: OutcomeRecords | None = None
    model: ModelServer | None = None
    try:
        # The AI example's model, before its definition is registered pointing at it.
        model = await start_dev_model_for(address)
        registered = await _register_examples(address, model.base_url)
        # Both modules export the shared charge-card step: keep each step once.
        steps = {s.key: s for module in EXAMPLE_STEPS_MODULES for s in load_steps(module)}
        # Like any connector worker, over gRPC: only the control plane opens the database.
        outcomes = OutcomeRecords(address)
        connectors = connector_steps(ConnectorRuntime(secrets, outcomes))
        steps.update((s.key, s) for s in connectors)
        worker = Worker(address, list(steps.values()), drain_timeout=WORKER_GRACE_SECONDS)
        worker_task = asyncio.create_task(worker.run(), name="surefoot-dev-worker")
        _print_banner(
            address, database, registered, user, [s.name for s in connectors], model.base_url
        )
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({stopping, worker_task}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        exit_code = 0
        if worker_task.done():
            error = worker_task.exception()
            exit_code = _fail(
                f"the example worker stopped: {_one_line(error) if error else 'done'}"
            )
    except grpc.aio.AioRpcError as exc:
        exit_code = _fail(
            f"cannot register the example workflow: {exc.code().name}: {exc.details()}"
        )
    finally:
        # A second Ctrl-C during shutdown interrupts it instead of being swallowed.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if worker is not None and worker_task is not None:
            await _stop_worker(worker, worker_task)
        if outcomes is not None:
            outcomes.close()
        await control_plane.stop(grace=SERVER_GRACE_SECONDS)
        if model is not None:
            model.close()
    print(f"surefoot dev stopped; its runs are kept in {database}")
    return exit_code


async def _register_examples(address: str, model_url: str) -> list[str]:
    """Registers the example definitions; "unchanged" on a restart is the expected answer.

    The examples' model connections are pointed at the dev model (`model_url`), and an eval
    set beside a definition file (`support.yaml` -> `support.eval.yaml`) is attached to its
    versions, as `surefoot definitions apply` does, so that `surefoot eval` works in the tour.
    """
    import surefoot_worker
    from surefoot_worker.authoring import load_definitions

    examples = Path(surefoot_worker.__file__).parent / "examples"
    definitions = [
        (examples / name, definition)
        for name in EXAMPLE_DEFINITION_FILES
        for definition in load_definitions(str(examples / name))
    ]
    lines = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
        for path, definition in definitions:
            for connection in definition.models:
                connection.base_url = model_url
            request = ws.RegisterDefinitionRequest(namespace="default", definition=definition)
            try:
                response = await stub.RegisterDefinition(request, timeout=10.0)
            except grpc.aio.AioRpcError as exc:
                if not definition.models or exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                # Registered by an earlier start whose model port is taken now: the version
                # keeps that address, so its new runs cannot reach the model until restarted.
                lines.append(f"{definition.name}@{definition.version} (kept, another model port)")
                continue
            verb = "registered" if response.created else "unchanged"
            beside = path.with_name(f"{path.stem}.eval{path.suffix}")
            if definition.models and beside.is_file():
                await _attach_eval_set(channel, definition, beside.read_text(encoding="utf-8"))
                verb += ", with its eval set"
            lines.append(f"{definition.name}@{definition.version} ({verb})")
    return lines


async def _attach_eval_set(
    channel: grpc.aio.Channel, definition: definition_pb2.WorkflowDefinition, text: str
) -> None:
    """PutEvalSet; the same set again is a no-op. A version keeps the set it was given first
    (ALREADY_EXISTS for another): an edited example file needs a new data directory."""
    stub = evaluation_service_pb2_grpc.EvaluationServiceStub(channel)
    request = evaluation_service_pb2.PutEvalSetRequest(
        namespace="default",
        workflow_name=definition.name,
        workflow_version=definition.version,
        eval_set=text,
    )
    try:
        await stub.PutEvalSet(request, timeout=10.0)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


async def _stop_worker(worker: Worker, task: asyncio.Task[Any]) -> None:
    # The SDK's graceful path: stop taking tasks, let those in flight finish for up to the
    # drain timeout, hand back the rest (the server gives them to the next worker).
    await worker.shutdown()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task  # its error, if any, was reported already


def _print_banner(
    address: str,
    database: Path,
    registered: list[str],
    user: str,
    connectors: list[str],
    model_url: str,
) -> None:
    onboarding = '{"customer": "ACME Corp", "email": "ops@acme.test", "plan": "team", "amount": 49'
    lines = [
        f"Surefoot dev control plane listening on {address}",
        f"  database:   {database}",
        f"  workflows:  {', '.join(registered) or 'none'}",
        f"  worker:     example steps from {', '.join(EXAMPLE_STEPS_MODULES)}, in this process",
        f"  connectors: {', '.join(connectors)} (secrets: SUREFOOT_SECRET_<NAME>)",
        f"  model:      {model_url} (a scripted ticket classifier for `support`; no key)",
        f"  caller:     {user} (requests without a bearer token act as the OS user)",
        "",
        "Try, in another terminal:",
    ]
    if address != DEFAULT_ADDRESS:
        lines.append(f"  export SUREFOOT_ADDRESS={address}")
    lines += [
        f"  RUN=$(uv run surefoot runs start onboarding --input '{onboarding}}}')",
        "  uv run surefoot approvals list",
        '  uv run surefoot approvals approve "$RUN:approve" --comment "looks good"',
        '  uv run surefoot runs show "$RUN"',
        "",
        "  # provisioning fails: watch the charge refunded and the customer cancelled",
        f"  RUN=$(uv run surefoot runs start onboarding --input '{onboarding}, "
        """"fail_provisioning": true}')""",
        '  uv run surefoot approvals approve "$RUN:approve"',
        '  uv run surefoot runs history "$RUN"',
        "",
        "  # a run that waits for an event, then sleeps through a 20 s trial",
        "  RUN=$(uv run surefoot runs start trial --input "
        """'{"customer": "Initech", "email": "it@initech.test", "plan": "team", "amount": 20}')""",
        "  uv run surefoot events send card-added --key it@initech.test "
        """--payload '{"card": "visa-4242"}'""",
        '  uv run surefoot runs show "$RUN"',
        "",
        *ai_tour_lines(),
        "",
        "The README's tour explains each of these.",
        "Ctrl-C stops it; starting again on the same --data-dir resumes the runs in flight.",
    ]
    print("\n".join(lines), flush=True)


def _os_user() -> str:
    """The OS user, who decides approvals in dev mode; a placeholder where there is none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # e.g. a container user without a passwd entry
        return "dev"


def _connect_host(listen: str) -> str:
    """Where a local client reaches a server bound to `listen` (wildcards mean loopback)."""
    host = listen.rpartition(":")[0]
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host


def _port_problem(listen: str) -> str | None:
    """Why `listen` cannot be bound, found before anything starts.

    The server would find out too, but only after migrating the database, and gRPC's core
    logs its own multi-line complaint first; a plain bind gives one clear line.
    """
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        return "expected HOST:PORT"
    if int(port) == 0:
        return None
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host.strip("[]") or "0.0.0.0", int(port), type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror})"
    with socket.socket(family, kind, proto) as probe:
        # SO_REUSEADDR: connections of a previous run in TIME_WAIT do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "the port is in use (another surefoot? pick another with --listen)"
            return exc.strerror or str(exc)
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())
