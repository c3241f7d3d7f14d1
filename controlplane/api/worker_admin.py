"""surefoot.v1.WorkerAdminService: the connected workers and the queues nobody serves.

Reading only, from the database: every control plane records its own worker streams in
`worker_sessions` (dispatch/operations/session_changes.py), so any of them answers for all
(law 9), and a stream whose control plane stopped confirming it is not listed as connected.
The caller needs the viewer role in the namespace (api/access.py checks it before this runs;
checked here again so that the servicer stands on its own).
"""

from __future__ import annotations

import asyncio
import time

import grpc
from sqlalchemy import Engine
from surefoot.v1 import worker_admin_service_pb2 as wpb
from surefoot.v1 import worker_admin_service_pb2_grpc

from controlplane import errors
from controlplane.api import convert
from controlplane.api.namespaces import checked_namespace
from controlplane.auth.authenticator import Authenticator
from controlplane.auth.caller import Role
from controlplane.store import worker_sessions
from controlplane.store.codec import to_datetime
from controlplane.store.database import reader

MAX_PAGE = 1000
DEFAULT_PAGE = 100


class WorkerAdminService(worker_admin_service_pb2_grpc.WorkerAdminServiceServicer):  # type: ignore[misc]
    def __init__(self, engine: Engine, auth: Authenticator) -> None:
        self._engine = engine
        self._auth = auth

    async def ListWorkers(
        self, request: wpb.ListWorkersRequest, context: grpc.aio.ServicerContext
    ) -> wpb.ListWorkersResponse:
        namespace = checked_namespace(request.namespace)
        caller = await self._auth.caller(context)
        caller.require(namespace, Role.VIEWER)
        if not 0 <= request.page_size <= MAX_PAGE:
            raise errors.InvalidArgument.field("page_size", f"must be between 0 and {MAX_PAGE}")
        now = time.time()
        rows, token = await asyncio.to_thread(self._list, namespace, request, now)
        return wpb.ListWorkersResponse(
            workers=[_worker(row, now) for row in rows], next_page_token=token
        )

    def _list(
        self, namespace: str, request: wpb.ListWorkersRequest, now: float
    ) -> tuple[list[worker_sessions.SessionRow], str]:
        with reader(self._engine).connect() as connection:
            try:
                return worker_sessions.list_sessions(
                    connection,
                    namespace,
                    to_datetime(now),
                    request.page_size or DEFAULT_PAGE,
                    request.page_token,
                    include_stale=request.include_stale,
                )
            except ValueError as exc:
                raise errors.InvalidArgument.field("page_token", str(exc)) from None

    async def ListQueuedStepTypes(
        self, request: wpb.ListQueuedStepTypesRequest, context: grpc.aio.ServicerContext
    ) -> wpb.ListQueuedStepTypesResponse:
        namespace = checked_namespace(request.namespace)
        caller = await self._auth.caller(context)
        caller.require(namespace, Role.VIEWER)
        queued = await asyncio.to_thread(self._queued, namespace)
        return wpb.ListQueuedStepTypesResponse(
            step_types=[
                wpb.QueuedStepType(
                    name=entry.name,
                    version=entry.version,
                    queued=entry.queued,
                    oldest_queued_since=convert.timestamp(entry.oldest),
                    capable_workers=entry.capable_workers,
                    connected_versions=entry.connected_versions,
                )
                for entry in queued
                if not request.uncovered_only or entry.capable_workers == 0
            ]
        )

    def _queued(self, namespace: str) -> list[worker_sessions.QueuedStepType]:
        with reader(self._engine).connect() as connection:
            return worker_sessions.queued_step_types(
                connection, namespace, to_datetime(time.time())
            )


def _worker(row: worker_sessions.SessionRow, now: float) -> wpb.ConnectedWorker:
    return wpb.ConnectedWorker(
        session_id=row.id,
        namespace=row.namespace,
        worker_id=row.worker_id,
        principal=row.principal,
        step_types=[wpb.WorkerStepType(name=n, version=v) for n, v in row.step_types],
        credit=row.credit,
        in_flight=row.in_flight,
        draining=row.draining,
        connected_since=convert.timestamp(row.connected_at),
        last_heartbeat=convert.timestamp(row.last_heartbeat),
        last_seen=convert.timestamp(row.seen_at),
        control_plane=row.control_plane,
        stale=row.expires_at.timestamp() < now,
        last_heard=convert.timestamp(row.heard_at),
    )
