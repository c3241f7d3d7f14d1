"""A real control plane in the test process, keeping the outcome records of connector calls.

The connector steps the in-process tests call keep their outcome records through the
control plane's gRPC service, as in a worker. The service only keeps records for steps of
runs in the caller's namespace, so the run labels the tests use in keys (``run-6:notify``)
each stand for a real run started on this control plane (:class:`RunKeys`); a client
interceptor puts the real key into the outcome requests, and nothing else changes: the step
still sees, sends and reports the label.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from sqlalchemy import Engine
from surefoot.v1 import definition_pb2, workflow_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_connectors import OutcomeRecords
from surefoot_worker.authoring import definition_from_dict

from controlplane.server import ControlPlane, ServerConfig
from controlplane.store import connector_outcomes as records
from controlplane.store.database import open_engine

START_TIMEOUT = 60.0
# A run that waits for a decision nobody gives: it exists, in its namespace, for the test.
HOLDING = "connector-outcome-holder"


class InProcessControlPlane:
    """`surefoot server` on `database_url`, on its own event loop in a thread of the test.

    Args:
        database_url: The database; migrated on start.
        auth_file: As `surefoot server --auth-file`.
    """

    def __init__(self, database_url: str, auth_file: str | None = None) -> None:
        self.database_url = database_url
        self._plane = ControlPlane(
            ServerConfig(
                database_url=database_url,
                listen="127.0.0.1:0",
                auth_file=auth_file,
                no_auth=auth_file is None,
            )
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.address = ""
        self._channel: grpc.Channel | None = None
        self.engine: Engine = open_engine(database_url)

    def start(self) -> InProcessControlPlane:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._plane.start(), self._loop).result(
            START_TIMEOUT
        )
        self.address = f"127.0.0.1:{port}"
        self._channel = grpc.insecure_channel(self.address)
        return self

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
        if self.address:
            asyncio.run_coroutine_threadsafe(self._plane.stop(grace=1.0), self._loop).result(
                START_TIMEOUT
            )
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT)
        self._loop.close()
        self.engine.dispose()

    @property
    def stub(self) -> workflow_service_pb2_grpc.WorkflowServiceStub:
        assert self._channel is not None, "start() first"
        return workflow_service_pb2_grpc.WorkflowServiceStub(self._channel)


@contextmanager
def control_plane_on(
    database_url: str, auth_file: str | None = None
) -> Iterator[InProcessControlPlane]:
    plane = InProcessControlPlane(database_url, auth_file).start()
    try:
        yield plane
    finally:
        plane.stop()


def holding_definition() -> definition_pb2.WorkflowDefinition:
    return definition_from_dict(
        {
            "name": HOLDING,
            "version": "1",
            "nodes": [{"id": "hold", "approval": {"title": "never decided", "approvers": []}}],
        }
    )


def start_holding_run(
    stub: workflow_service_pb2_grpc.WorkflowServiceStub,
    namespace: str = "default",
    metadata: tuple[tuple[str, str], ...] = (),
) -> str:
    """A new run of the holding workflow in `namespace` (registered there if need be)."""
    stub.RegisterDefinition(
        ws.RegisterDefinitionRequest(namespace=namespace, definition=holding_definition()),
        timeout=10,
        metadata=metadata,
    )
    request = ws.StartRunRequest(namespace=namespace, workflow_name=HOLDING)
    return str(stub.StartRun(request, timeout=10, metadata=metadata).run_id)


class RunKeys:
    """Real step keys for the labels a test uses: ``run-6:notify`` -> ``<run id>:notify``.

    Each run label seen for the first time starts a run; the same label is the same run.
    """

    def __init__(self, plane: InProcessControlPlane) -> None:
        self._plane = plane
        self._runs: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, label: str) -> str:
        run_label, _, rest = label.partition(":")
        with self._lock:
            if run_label not in self._runs:
                self._runs[run_label] = start_holding_run(self._plane.stub)
            return f"{self._runs[run_label]}:{rest}"


class _LabelsToRuns(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Sends the real key of each outcome request's label (see the module docstring)."""

    def __init__(self, keys: RunKeys) -> None:
        self._keys = keys

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        real = type(request)()
        real.CopyFrom(request)
        real.idempotency_key = self._keys(request.idempotency_key)
        return continuation(details, real)


class OutcomeLedger:
    """The outcome records of one test: the worker's client and what the database holds.

    `run_once` is the connector worker's (:class:`OutcomeRecords`); `read` and `forget` look
    at the control plane's table directly, by label.
    """

    def __init__(self, plane: InProcessControlPlane) -> None:
        self.plane = plane
        self.keys = RunKeys(plane)
        channel = grpc.intercept_channel(
            grpc.insecure_channel(plane.address), _LabelsToRuns(self.keys)
        )
        self.client = OutcomeRecords(plane.address, channel=channel)

    def run_once(self, **call: Any) -> Any:
        return self.client.run_once(**call)

    def read(self, label: str) -> records.Recorded | None:
        with self.plane.engine.connect() as connection:
            return records.read(connection, self.keys(label))

    def forget(self, label: str) -> bool:
        with self.plane.engine.begin() as connection:
            return records.forget(connection, self.keys(label))

    def close(self) -> None:
        self.client.close()


def read_record(database_url: str, key: str) -> records.Recorded | None:
    """The outcome record of `key` in a control plane's database, read directly."""
    engine = open_engine(database_url)
    try:
        with engine.connect() as connection:
            return records.read(connection, key)
    finally:
        engine.dispose()
