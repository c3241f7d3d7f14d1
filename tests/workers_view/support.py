"""Helpers of the workers-view tests: the admin client, listing, and worker processes whose
credit the test chooses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from surefoot.v1 import worker_admin_service_pb2 as wpb
from surefoot.v1 import worker_admin_service_pb2_grpc

from tests.support.processes import (
    STEPS_MODULE,
    WORKER_CONNECTED,
    ControlPlane,
    ProcessRegistry,
    WorkerProcess,
    surefoot_command,
)

CALL_TIMEOUT = 30.0


def admin(server: ControlPlane) -> worker_admin_service_pb2_grpc.WorkerAdminServiceStub:
    return worker_admin_service_pb2_grpc.WorkerAdminServiceStub(server.channel)


def listed(
    server: ControlPlane, namespace: str = "", include_stale: bool = False
) -> dict[str, wpb.ConnectedWorker]:
    """Every worker ListWorkers returns, by worker id, read page by page."""
    found: dict[str, wpb.ConnectedWorker] = {}
    token = ""
    while True:
        response = admin(server).ListWorkers(
            wpb.ListWorkersRequest(
                namespace=namespace, page_token=token, include_stale=include_stale
            ),
            timeout=CALL_TIMEOUT,
        )
        for worker in response.workers:
            assert worker.worker_id not in found, f"{worker.worker_id} listed twice"
            found[worker.worker_id] = worker
        token = response.next_page_token
        if not token:
            return found


def queued(server: ControlPlane, uncovered_only: bool = False) -> list[wpb.QueuedStepType]:
    return list(
        admin(server)
        .ListQueuedStepTypes(
            wpb.ListQueuedStepTypesRequest(uncovered_only=uncovered_only), timeout=CALL_TIMEOUT
        )
        .step_types
    )


def start_worker(
    registry: ProcessRegistry,
    server: ControlPlane,
    concurrency: int,
    module: str | Path = STEPS_MODULE,
    extra: Sequence[str] = (),
) -> WorkerProcess:
    """`surefoot worker MODULE --concurrency N`, once its control plane welcomed it."""
    process = registry.start(
        "worker",
        surefoot_command(
            "worker",
            str(module),
            "--address",
            server.address,
            "--concurrency",
            str(concurrency),
            *extra,
        ),
    )
    found = process.wait_for_stdout(WORKER_CONNECTED)
    return WorkerProcess(process, found.group(1))
