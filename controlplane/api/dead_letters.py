"""Dead letters on WorkflowService: list or group them, retry or skip one, redrive many.

Retrying and skipping are human actions: they need an authenticated caller where the
server knows tokens, and they are history with the principal (law 7).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from sqlalchemy import Connection
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.api import convert
from controlplane.api.errors import abort, invalid_field
from controlplane.api.namespaces import namespace_of
from controlplane.api.payloads import json_value
from controlplane.api.principal import Authenticator, principal_of
from controlplane.dispatch import operations as ops
from controlplane.dispatch.committer import Committer
from controlplane.engine.events import StepRetryRequested, StepSkipRequested
from controlplane.store import dead_letter_queries as dlq
from controlplane.store import run_queries

MAX_PAGE = 1000
MAX_REDRIVE = 10_000
DEFAULT_REDRIVE = 1000
MAX_COMMENT = 2000
_NOW = 0.0  # the committer stamps operator actions with its commit time


class DeadLetterRpcs:
    """Mixed into WorkflowService; expects `_read`, `_committer` and `_auth`."""

    _committer: Committer
    _auth: Authenticator
    _read: Callable[[Callable[[Connection], Any]], Awaitable[Any]]

    async def ListDeadLetters(
        self, request: ws.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> ws.ListDeadLettersResponse:
        namespace = await namespace_of(context, request.namespace)
        if not 0 <= request.page_size <= MAX_PAGE:
            await invalid_field(context, "page_size", f"must be between 0 and {MAX_PAGE}")
        where = _filter(request.filter)
        size = request.page_size or 100
        if request.grouped:
            groups = await self._read(lambda c: dlq.group_dead_letters(c, namespace, where, size))
            return ws.ListDeadLettersResponse(groups=[_group(g) for g in groups])
        try:
            rows, token = await self._read(
                lambda c: dlq.list_dead_letters(
                    c, namespace, where, page_size=size, page_token=request.page_token
                )
            )
        except ValueError as exc:
            await invalid_field(context, "page_token", str(exc))
        return ws.ListDeadLettersResponse(
            dead_letters=[_dead_letter(r._mapping) for r in rows], next_page_token=token
        )

    async def RetryStep(
        self, request: ws.RetryStepRequest, context: grpc.aio.ServicerContext
    ) -> ws.RetryStepResponse:
        namespace = await _checked(context, request)
        edit = request.HasField("input")
        value = await json_value(context, "input", request.input) if edit else None
        principal = await self._principal(context)
        event = StepRetryRequested(
            request.node_id,
            principal,
            request.comment,
            _NOW,
            input=value,
            edit_input=edit,
            forget_outcome=request.forget_connector_outcome,
        )
        await self._triage(context, namespace, request.run_id, event)
        return ws.RetryStepResponse(run=await self._run(namespace, request.run_id))

    async def SkipStep(
        self, request: ws.SkipStepRequest, context: grpc.aio.ServicerContext
    ) -> ws.SkipStepResponse:
        namespace = await _checked(context, request)
        if not request.HasField("output"):
            await invalid_field(context, "output", "is required: the nodes after the step read it")
        value = await json_value(context, "output", request.output)
        principal = await self._principal(context)
        event = StepSkipRequested(request.node_id, principal, request.comment, _NOW, value)
        await self._triage(context, namespace, request.run_id, event)
        return ws.SkipStepResponse(run=await self._run(namespace, request.run_id))

    async def RedriveDeadLetters(
        self, request: ws.RedriveDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> ws.RedriveDeadLettersResponse:
        namespace = await namespace_of(context, request.namespace)
        where = _filter(request.filter)
        if where.empty:
            await invalid_field(
                context,
                "filter",
                "needs a workflow, step type or error type: redriving everything is refused",
            )
        if not 0 <= request.limit <= MAX_REDRIVE:
            await invalid_field(context, "limit", f"must be between 0 and {MAX_REDRIVE}")
        if len(request.comment) > MAX_COMMENT:
            await invalid_field(context, "comment", f"is longer than {MAX_COMMENT} characters")
        principal = await self._principal(context)
        limit = request.limit or DEFAULT_REDRIVE
        found = await self._read(lambda c: dlq.matching(c, namespace, where, limit))
        # One operation per run, group-committed together; a run someone else decided on
        # meanwhile answers FAILED_PRECONDITION and is simply not counted.
        outcomes = await asyncio.gather(
            *(
                self._committer.submit(
                    ops.TriageStep(
                        namespace,
                        run_id,
                        StepRetryRequested(node_id, principal, request.comment, _NOW),
                    )
                )
                for run_id, node_id in found
            ),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, ops.NotFound | ops.Conflict
            ):
                raise outcome
        retried = sum(1 for o in outcomes if not isinstance(o, BaseException))
        remaining = await self._read(lambda c: dlq.count_matching(c, namespace, where))
        return ws.RedriveDeadLettersResponse(retried=retried, remaining=remaining)

    async def _principal(self, context: grpc.aio.ServicerContext) -> str:
        caller = await self._auth.caller(context)
        return caller.principal if caller.authenticated else principal_of(context)

    async def _triage(
        self,
        context: grpc.aio.ServicerContext,
        namespace: str,
        run_id: str,
        event: StepRetryRequested | StepSkipRequested,
    ) -> None:
        try:
            await self._committer.submit(ops.TriageStep(namespace, run_id, event))
        except ops.NotFound as exc:
            await abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
        except ops.Conflict as exc:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))

    async def _run(self, namespace: str, run_id: str) -> Any:
        view = await self._read(lambda c: run_queries.get_run(c, namespace, run_id))
        assert view is not None
        return convert.run_detail(view)


async def _checked(
    context: grpc.aio.ServicerContext, request: ws.RetryStepRequest | ws.SkipStepRequest
) -> str:
    namespace = await namespace_of(context, request.namespace)
    if not request.run_id:
        await invalid_field(context, "run_id", "is required")
    if not request.node_id:
        await invalid_field(context, "node_id", "is required")
    if len(request.comment) > MAX_COMMENT:
        await invalid_field(context, "comment", f"is longer than {MAX_COMMENT} characters")
    return namespace


def _filter(message: ws.DeadLetterFilter) -> dlq.DeadLetterFilter:
    return dlq.DeadLetterFilter(message.workflow_name, message.step_type, message.error_type)


def _dead_letter(row: Any) -> ws.DeadLetter:
    return ws.DeadLetter(
        run_id=row["run_id"],
        node_id=row["node_id"],
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        step_type=row["step_type"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        attempts=row["attempts"],
        dead_lettered_at=convert.timestamp(row["dead_lettered_at"]),
        compensation=bool(row["compensation"]),
    )


def _group(group: dlq.Group) -> ws.DeadLetterGroup:
    return ws.DeadLetterGroup(
        workflow_name=group.workflow_name,
        step_type=group.step_type,
        error_type=group.error_type,
        count=group.count,
        oldest=convert.timestamp(group.oldest),
        newest=convert.timestamp(group.newest),
        sample_message=group.sample_message,
        sample_run_id=group.sample_run_id,
    )
