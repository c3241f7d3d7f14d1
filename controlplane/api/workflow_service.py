"""surefoot.v1.WorkflowService: one gRPC service, its RPCs in one module per concept.

definitions, runs, approvals, events and dead_letters each hold plain functions
`(backend, request, context) -> response` (run_watch and run_list_watch async generators
of responses, the server streams); this class only names them as the service's methods.
Refusals they raise become statuses in `controlplane.api.failures`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
from sqlalchemy import Engine
from surefoot.v1 import workflow_service_pb2_grpc

from controlplane.api import (
    approvals,
    dead_letters,
    definitions,
    events,
    run_control,
    run_forks,
    run_list_watch,
    run_replay,
    run_watch,
    runs,
)
from controlplane.api.backend import Backend
from controlplane.api.principal import Authenticator
from controlplane.dispatch.committer import Committer
from controlplane.store.step_types import StepCatalogCache

Request = TypeVar("Request")
Response = TypeVar("Response")
Rpc = Callable[[Backend, Request, grpc.aio.ServicerContext], Awaitable[Response]]
StreamRpc = Callable[[Backend, Request, grpc.aio.ServicerContext], AsyncIterator[Response]]


def _method(rpc: Rpc[Request, Response]) -> Callable[..., Awaitable[Response]]:
    async def method(
        self: WorkflowService, request: Request, context: grpc.aio.ServicerContext
    ) -> Response:
        return await rpc(self.backend, request, context)

    method.__doc__ = rpc.__doc__
    return method


def _streaming_method(rpc: StreamRpc[Request, Response]) -> Callable[..., AsyncIterator[Response]]:
    """`_method` for a server stream: an async generator, which grpc.aio serves as one."""

    async def method(
        self: WorkflowService, request: Request, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Response]:
        async for response in rpc(self.backend, request, context):
            yield response

    method.__doc__ = rpc.__doc__
    return method


class WorkflowService(workflow_service_pb2_grpc.WorkflowServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        engine: Engine,
        committer: Committer,
        catalog: StepCatalogCache,
        auth: Authenticator | None = None,
    ) -> None:
        self.backend = Backend(engine, committer, catalog, auth or Authenticator())

    RegisterDefinition = _method(definitions.register)
    GetDefinition = _method(definitions.get)
    ListDefinitions = _method(definitions.list_all)
    DeprecateDefinition = _method(definitions.deprecate)

    StartRun = _method(runs.start)
    GetRun = _method(runs.get)
    ListRuns = _method(runs.list_page)
    WatchRuns = _streaming_method(run_list_watch.watch)
    GetRunHistory = _method(runs.history)
    WatchRun = _streaming_method(run_watch.watch)
    CancelRun = _method(runs.cancel)
    PauseRun = _method(run_control.pause)
    ResumeRun = _method(run_control.resume)
    GetRunAt = _method(run_replay.get_at)
    ForkRun = _method(run_forks.fork)

    ListApprovals = _method(approvals.list_page)
    GetApproval = _method(approvals.get)
    DecideApproval = _method(approvals.decide)

    SendEvent = _method(events.send)

    ListDeadLetters = _method(dead_letters.list_page)
    RetryStep = _method(dead_letters.retry)
    SkipStep = _method(dead_letters.skip)
    RedriveDeadLetters = _method(dead_letters.redrive)
