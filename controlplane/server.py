"""The control plane process: gRPC services on top of the store and the committer."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2
from sqlalchemy import Engine
from surefoot.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    credential_service_pb2,
    credential_service_pb2_grpc,
    evaluation_service_pb2,
    evaluation_service_pb2_grpc,
    operation_service_pb2,
    operation_service_pb2_grpc,
    worker_admin_service_pb2,
    worker_admin_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
    workflow_service_pb2,
    workflow_service_pb2_grpc,
)
from surefoot_worker import _heap as heap

from controlplane import telemetry
from controlplane.api import stream_limits
from controlplane.api.access import Guarded
from controlplane.api.audit import AuditService
from controlplane.api.connector_outcomes import ConnectorOutcomeService
from controlplane.api.credentials import CredentialService
from controlplane.api.evaluations import EvaluationService
from controlplane.api.failures import ErrorMapped
from controlplane.api.operations import OperationService
from controlplane.api.principal import Authenticator
from controlplane.api.worker_admin import WorkerAdminService
from controlplane.api.worker_service import WorkerService
from controlplane.api.workflow_service import WorkflowService
from controlplane.dispatch.committer import Committer
from controlplane.dispatch.operations.remote_cancels import CancelHeldTasks
from controlplane.dispatch.redrives import RedriveRunner
from controlplane.dispatch.session_confirmation import SessionConfirmer
from controlplane.dispatch.wakeups import CANCELS_CHANNEL, WakeupListener, cancels_heard
from controlplane.metrics import ExporterError, MetricsConfig, ServerMetrics
from controlplane.store.database import masked, open_engine
from controlplane.store.definitions import DefinitionCache
from controlplane.store.migrate import upgrade_engine
from controlplane.store.statistics import FirstAnalyze
from controlplane.store.step_types import STEP_TYPES_CHANNEL, StepCatalogCache
from controlplane.tls_files import TlsFilesError, server_credentials

log = logging.getLogger("surefoot.server")


@dataclass
class ServerConfig:
    database_url: str
    listen: str = "127.0.0.1:7233"
    lease_seconds: float = 30.0
    heartbeat_interval_seconds: float | None = None
    # How often idle dispatch looks for ready tasks nobody announced: a safety net (tasks are
    # handed out as they are scheduled, retries as they come due, other control planes'
    # tasks on their NOTIFY).
    poll_interval_seconds: float = 1.0
    # YAML of hashed bearer tokens and certificate subjects (see controlplane/auth/auth_file.py).
    auth_file: str | None = None
    # Dev mode: callers without a credential act as this OS user, with every role.
    local_user: str = ""
    # Callers without a credential are anonymous with every role. Without it (and outside
    # dev mode) every call needs a credential: the auth file's or the database's.
    no_auth: bool = False
    # TLS on the listener (PEM paths); with a client CA, clients must present a certificate
    # it signed (mutual TLS). Without a certificate the listener is plaintext.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    # A second, plaintext listener serving only grpc.health.v1, for probes that cannot speak
    # TLS or present a credential (Kubernetes' `grpc:` probes). It tells nothing but status.
    health_listen: str | None = None
    # The largest gRPC message received or sent (a worker's result, a run's input).
    max_message_bytes: int = stream_limits.DEFAULT_MAX_MESSAGE_BYTES
    # What one worker stream may declare and send (api/stream_limits.py).
    worker_limits: stream_limits.StreamLimits = field(default_factory=stream_limits.StreamLimits)
    # The Prometheus scrape endpoint and how often gauges read the database (metrics/).
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_interval_seconds or max(0.2, self.lease_seconds / 3)


class PortInUse(Exception):
    pass


class ControlPlane:
    """Start with `await start()` (returns the bound port), stop with `await stop()`."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        # The health listener's bound port, once started (None without one).
        self.health_port: int | None = None
        # The metrics scrape endpoint's bound port, once started (None without one).
        self.metrics_port: int | None = None
        self._metrics: ServerMetrics | None = None
        self._committer: Committer | None = None
        self._workers: WorkerService | None = None
        self._listener: WakeupListener | None = None
        self._confirmer: SessionConfirmer | None = None
        self._statistics: FirstAnalyze | None = None
        self._redrives: RedriveRunner | None = None
        self._engine = open_engine(config.database_url)
        self._health = health.HealthServicer()
        self._auth = authenticator_for(config, self._engine)

    async def start(self) -> int:
        # Before the database: a wrong certificate path is the operator's first error to see.
        credentials = (
            server_credentials(
                self.config.tls_cert, self.config.tls_key or "", self.config.tls_client_ca
            )
            if self.config.tls_cert
            else None
        )
        revision = await asyncio.to_thread(upgrade_engine, self._engine)
        log.info("database %s at revision %s", masked(self.config.database_url), revision)
        if self.config.no_auth and not self.config.local_user:
            log.warning("--no-auth: callers without a credential act with every role")
        elif not self.config.local_user and not self.config.auth_file:
            # Not an error (credentials may all live in the database), but the first thing an
            # operator refused with UNAUTHENTICATED needs to know.
            log.info(
                "no auth file: only credentials stored in the database are accepted "
                "(the first: surefoot credentials create NAME --role '*=admin' --database-url URL)"
            )
        definitions = DefinitionCache(self._engine)
        catalog = StepCatalogCache(self._engine)
        committer = Committer(
            self._engine,
            definitions,
            catalog,
            lease_seconds=self.config.lease_seconds,
            poll_interval=self.config.poll_interval_seconds,
        )
        workers = WorkerService(
            self._engine,
            committer,
            catalog,
            self._auth,
            lease_seconds=self.config.lease_seconds,
            heartbeat_interval=self.config.heartbeat_interval,
            limits=self.config.worker_limits,
        )
        telemetry.setup()
        server = grpc.aio.server(
            # The error map wraps the handlers themselves (ErrorMapped below), inside the
            # tracing interceptor: a traced call's span sees the status it maps to.
            interceptors=telemetry.grpc_server_interceptors(),
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.max_receive_message_length", self.config.max_message_bytes),
                ("grpc.max_send_message_length", self.config.max_message_bytes),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ],
        )
        # Every handler is wrapped twice at registration: the error map, and outside it the
        # access rules (api/access.py), so that the caller is checked before anything else.
        guarded: Any = Guarded(server, self._auth)
        mapped: Any = ErrorMapped(guarded)
        workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(
            WorkflowService(self._engine, committer, catalog, self._auth), mapped
        )
        worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(workers, mapped)
        worker_service_pb2_grpc.add_ConnectorOutcomeServiceServicer_to_server(
            ConnectorOutcomeService(self._engine, self._auth), mapped
        )
        audit_service_pb2_grpc.add_AuditServiceServicer_to_server(
            AuditService(self._engine, self._auth), mapped
        )
        credential_service_pb2_grpc.add_CredentialServiceServicer_to_server(
            CredentialService(self._engine, self._auth), mapped
        )
        redrives = RedriveRunner(self._engine, committer)
        operation_service_pb2_grpc.add_OperationServiceServicer_to_server(
            OperationService(self._engine, self._auth, redrives), mapped
        )
        worker_admin_service_pb2_grpc.add_WorkerAdminServiceServicer_to_server(
            WorkerAdminService(self._engine, self._auth), mapped
        )
        evaluation_service_pb2_grpc.add_EvaluationServiceServicer_to_server(
            EvaluationService(self._engine, self._auth), mapped
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (
            workflow_service_pb2.DESCRIPTOR.services_by_name["WorkflowService"].full_name,
            worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
            worker_service_pb2.DESCRIPTOR.services_by_name["ConnectorOutcomeService"].full_name,
            audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
            credential_service_pb2.DESCRIPTOR.services_by_name["CredentialService"].full_name,
            operation_service_pb2.DESCRIPTOR.services_by_name["OperationService"].full_name,
            worker_admin_service_pb2.DESCRIPTOR.services_by_name["WorkerAdminService"].full_name,
            evaluation_service_pb2.DESCRIPTOR.services_by_name["EvaluationService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
            REFLECTION_V1,
        )
        reflection.enable_server_reflection(names, server)
        server.add_generic_rpc_handlers((reflection_v1_handler(names),))
        try:
            if credentials is None:
                port = server.add_insecure_port(self.config.listen)
            else:
                port = server.add_secure_port(self.config.listen, credentials)
        except RuntimeError as exc:
            raise PortInUse(f"cannot listen on {self.config.listen}: {exc}") from exc
        if port == 0:
            raise PortInUse(f"cannot listen on {self.config.listen}: address in use")
        if ServerMetrics.wanted(self.config.metrics):
            try:
                self._metrics = ServerMetrics(self._engine, self.config.metrics)
                self.metrics_port = self._metrics.start()
            except ExporterError as exc:
                raise PortInUse(str(exc)) from exc
            committer.instruments = self._metrics.committer
        committer.start()
        # Redrives left unfinished by a control plane that stopped are taken up again here.
        redrives.start()
        self._redrives = redrives
        # Keeps this process's worker streams listed (worker_sessions) while they stay open.
        self._confirmer = SessionConfirmer(committer, self.config.lease_seconds)
        self._confirmer.start()
        if self._engine.dialect.name == "postgresql":
            self._listener = WakeupListener(
                self._engine,
                committer.origin,
                committer.wake,
                {
                    STEP_TYPES_CHANNEL: catalog.forget,
                    CANCELS_CHANNEL: cancels_heard(
                        committer.origin, lambda held: committer.post(CancelHeldTasks(held))
                    ),
                },
            )
            self._listener.start()
            self._statistics = FirstAnalyze(self._engine)
            self._statistics.start()
        await server.start()
        if self.config.health_listen:
            await self._start_health_listener(self.config.health_listen)
        for name in names[:2]:
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        self._server, self._committer, self._workers = server, committer, workers
        return port

    async def _start_health_listener(self, listen: str) -> None:
        health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(self._health, health_server)
        try:
            port = health_server.add_insecure_port(listen)
        except RuntimeError as exc:
            raise PortInUse(f"cannot listen on {listen} for health checks: {exc}") from exc
        if port == 0:
            raise PortInUse(f"cannot listen on {listen} for health checks: address in use")
        await health_server.start()
        self._health_server, self.health_port = health_server, port

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking calls, ask workers to reconnect elsewhere, finish what is queued."""
        self._health.enter_graceful_shutdown()
        if self._workers is not None:
            self._workers.drain_all("control plane shutting down")
        if self._server is not None:
            await self._server.stop(grace)
        if self._health_server is not None:
            # After the API: probes see NOT_SERVING for as long as the drain lasts.
            await self._health_server.stop(0)
        if self._confirmer is not None:
            await self._confirmer.stop()
        if self._redrives is not None:
            await self._redrives.stop()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop)
        if self._statistics is not None:
            await asyncio.to_thread(self._statistics.stop)
        if self._committer is not None:
            await asyncio.to_thread(self._committer.stop)
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.stop)
        await asyncio.to_thread(telemetry.shutdown)
        self._engine.dispose()

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


def authenticator_for(config: ServerConfig, engine: Engine) -> Authenticator:
    """Dev mode trusts the local user; `--no-auth` trusts everyone; otherwise credentials."""
    if config.local_user:
        return Authenticator.dev(config.local_user, engine)
    if config.no_auth:
        return Authenticator.open_access(engine, config.auth_file)
    return Authenticator.required(engine, config.auth_file)


def host_of(listen: str, port: int) -> str:
    host = listen.rsplit(":", 1)[0] or "127.0.0.1"
    return f"{host}:{port}"


def transport_of(config: ServerConfig) -> str:
    """What the listening line says about TLS (nothing for a plaintext listener)."""
    if not config.tls_cert:
        return ""
    return " with mutual TLS" if config.tls_client_ca else " with TLS"


# grpcio-reflection serves only v1alpha; v1 (what grpcurl and current clients ask first) has
# the same messages under another package, so the same servicer answers it byte for byte.
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def reflection_v1_handler(names: tuple[str, ...]) -> grpc.GenericRpcHandler:
    """grpc.reflection.v1 served by grpcio-reflection's v1alpha servicer."""
    # The asyncio servicer, which reflection.py re-exports as `aio` (untyped there).
    servicer = reflection_aio.ReflectionServicer(names)
    info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": info})


def run_server(config: ServerConfig) -> int:
    """Run until SIGINT/SIGTERM; the exit code for the CLI."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def main() -> int:
        control_plane = ControlPlane(config)
        try:
            port = await control_plane.start()
        except (PortInUse, TlsFilesError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        heap.settle()  # started: what exists now lives as long as the process
        print(
            f"surefoot control plane listening on {host_of(config.listen, port)}"
            f"{transport_of(config)}",
            flush=True,
        )
        if config.health_listen and control_plane.health_port is not None:
            where = host_of(config.health_listen, control_plane.health_port)
            print(f"health checks (plaintext) on {where}", flush=True)
        if config.metrics.listen and control_plane.metrics_port is not None:
            where = host_of(config.metrics.listen, control_plane.metrics_port)
            print(f"metrics (Prometheus) on http://{where}/metrics", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await control_plane.stop()
        return 0

    return asyncio.run(main())
