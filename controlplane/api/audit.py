"""surefoot.v1.AuditService: recompute runs' hash chains and say where each one breaks.

Reading only: verifying writes nothing, so that it can run against a database under
investigation. The caller needs the viewer role in the namespace.
"""

from __future__ import annotations

import asyncio

import grpc
from sqlalchemy import Engine
from surefoot.v1 import audit_service_pb2 as apb
from surefoot.v1 import audit_service_pb2_grpc

from controlplane import errors
from controlplane.api.namespaces import checked_namespace
from controlplane.api.principal import Authenticator, Role
from controlplane.audit.verify import Fault, Verdict
from controlplane.store import audit_queries
from controlplane.store.database import reader

MAX_RUNS = 1000
DEFAULT_PAGE = 100
_FAULTS = {
    Fault.EDITED: apb.CHAIN_FAULT_EDITED,
    Fault.INSERTED: apb.CHAIN_FAULT_INSERTED,
    Fault.DELETED: apb.CHAIN_FAULT_DELETED,
}


class AuditService(audit_service_pb2_grpc.AuditServiceServicer):  # type: ignore[misc]
    def __init__(self, engine: Engine, auth: Authenticator) -> None:
        self._engine = engine
        self._auth = auth

    async def VerifyRuns(
        self, request: apb.VerifyRunsRequest, context: grpc.aio.ServicerContext
    ) -> apb.VerifyRunsResponse:
        namespace = checked_namespace(request.namespace)
        caller = await self._auth.caller(context)
        caller.require(namespace, Role.VIEWER)
        run_ids = list(request.run_ids)
        _check(request, run_ids)
        verdicts, token = await asyncio.to_thread(self._verify, namespace, request, run_ids)
        return apb.VerifyRunsResponse(
            runs=[_verification(v) for v in verdicts], next_page_token=token
        )

    def _verify(
        self, namespace: str, request: apb.VerifyRunsRequest, run_ids: list[str]
    ) -> tuple[list[Verdict], str]:
        with reader(self._engine).connect() as connection:
            token = ""
            if request.all:
                try:
                    run_ids, token = audit_queries.run_page(
                        connection,
                        namespace,
                        request.page_size or DEFAULT_PAGE,
                        request.page_token,
                    )
                except ValueError as exc:
                    raise errors.InvalidArgument.field("page_token", str(exc)) from None
            else:
                found = audit_queries.existing_runs(connection, namespace, run_ids)
                for index, run_id in enumerate(run_ids):
                    if run_id not in found:
                        raise errors.NotFound(
                            f"run_ids[{index}]: run {run_id} not found in namespace {namespace!r}"
                        )
            return audit_queries.verify_runs(connection, namespace, run_ids), token


def _check(request: apb.VerifyRunsRequest, run_ids: list[str]) -> None:
    if request.all and run_ids:
        raise errors.InvalidArgument.field("run_ids", "give run ids or all, not both")
    if not request.all and not run_ids:
        raise errors.InvalidArgument.field("run_ids", "is required (or all)")
    if len(run_ids) > MAX_RUNS:
        raise errors.InvalidArgument.field("run_ids", f"at most {MAX_RUNS} at once")
    for index, run_id in enumerate(run_ids):
        if not run_id or len(run_id) > 36:
            raise errors.InvalidArgument.field(f"run_ids[{index}]", "is not a run id")
    if not 0 <= request.page_size <= MAX_RUNS:
        raise errors.InvalidArgument.field("page_size", f"must be between 0 and {MAX_RUNS}")
    if request.page_token and not request.all:
        raise errors.InvalidArgument.field("page_token", "pages only with all")


def _verification(verdict: Verdict) -> apb.RunVerification:
    return apb.RunVerification(
        run_id=verdict.run_id,
        ok=verdict.ok,
        events=verdict.events,
        head_hash=verdict.head_hash,
        seq=verdict.seq,
        fault=_FAULTS[verdict.fault] if verdict.fault else apb.CHAIN_FAULT_UNSPECIFIED,
        detail=verdict.detail,
    )
