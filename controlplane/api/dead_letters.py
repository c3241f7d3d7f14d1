"""Dead letters on WorkflowService: list or group them, retry or skip one, redrive many.

A durable, throttled redrive with a dry run and progress is OperationService's
(api/operations.py); RedriveDeadLetters here retries up to a limit within one call.

Retrying and skipping are human actions: they need an authenticated caller where the
server knows tokens, and they are history with the principal (law 7).
"""

from __future__ import annotations

import base64
from typing import Any

import grpc
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane import errors
from controlplane.api import convert, request_ids
from controlplane.api.backend import Backend
from controlplane.api.namespaces import checked_namespace
from controlplane.api.payloads import parse_json
from controlplane.api.redrive_requests import dead_letter_filter
from controlplane.dispatch import operations as ops
from controlplane.engine.events import StepRetryRequested, StepSkipRequested
from controlplane.store import dead_letter_queries as dlq

MAX_PAGE = 1000
MAX_REDRIVE = 10_000
DEFAULT_REDRIVE = 1000
MAX_COMMENT = 2000
_NOW = 0.0  # the committer stamps operator actions with its commit time


async def list_page(
    backend: Backend, request: ws.ListDeadLettersRequest, context: grpc.aio.ServicerContext
) -> ws.ListDeadLettersResponse:
    namespace = checked_namespace(request.namespace)
    if not 0 <= request.page_size <= MAX_PAGE:
        raise errors.InvalidArgument.field("page_size", f"must be between 0 and {MAX_PAGE}")
    where = _filter(request.filter)
    size = request.page_size or 100
    if request.grouped:
        offset = _group_offset(request.page_token)
        groups = await backend.read(
            lambda c: dlq.group_dead_letters(c, namespace, where, size + 1, offset)
        )
        token = _group_token(offset + size) if len(groups) > size else ""
        return ws.ListDeadLettersResponse(
            groups=[_group(g) for g in groups[:size]], next_page_token=token
        )
    try:
        rows, token = await backend.read(
            lambda c: dlq.list_dead_letters(
                c, namespace, where, page_size=size, page_token=request.page_token
            )
        )
    except ValueError as exc:
        raise errors.InvalidArgument.field("page_token", str(exc)) from None
    return ws.ListDeadLettersResponse(
        dead_letters=[_dead_letter(r._mapping) for r in rows], next_page_token=token
    )


async def retry(
    backend: Backend, request: ws.RetryStepRequest, context: grpc.aio.ServicerContext
) -> ws.RetryStepResponse:
    namespace = _checked(request)
    edit = request.HasField("input")
    value = parse_json("input", request.input) if edit else None
    principal = await backend.auth.acting_principal(context)
    event = StepRetryRequested(
        request.node_id,
        principal,
        request.comment,
        _NOW,
        input=value,
        edit_input=edit,
        forget_outcome=request.forget_connector_outcome,
    )
    key = request_ids.key_of(namespace, request, principal)
    return await request_ids.submitted(
        backend,
        context,
        key,
        ops.TriageStep(namespace, request.run_id, event),
        lambda committed: ws.RetryStepResponse(run=convert.run_detail(committed.view)),
        ws.RetryStepResponse,
    )


async def skip(
    backend: Backend, request: ws.SkipStepRequest, context: grpc.aio.ServicerContext
) -> ws.SkipStepResponse:
    namespace = _checked(request)
    if not request.HasField("output"):
        raise errors.InvalidArgument.field(
            "output", "is required: the nodes after the step read it"
        )
    value = parse_json("output", request.output)
    principal = await backend.auth.acting_principal(context)
    event = StepSkipRequested(request.node_id, principal, request.comment, _NOW, value)
    key = request_ids.key_of(namespace, request, principal)
    return await request_ids.submitted(
        backend,
        context,
        key,
        ops.TriageStep(namespace, request.run_id, event),
        lambda committed: ws.SkipStepResponse(run=convert.run_detail(committed.view)),
        ws.SkipStepResponse,
    )


async def redrive(
    backend: Backend, request: ws.RedriveDeadLettersRequest, context: grpc.aio.ServicerContext
) -> ws.RedriveDeadLettersResponse:
    namespace = checked_namespace(request.namespace)
    where = _filter(request.filter)
    if where.empty:
        raise errors.InvalidArgument.field(
            "filter", "needs a workflow, step type or error type: redriving everything is refused"
        )
    if not 0 <= request.limit <= MAX_REDRIVE:
        raise errors.InvalidArgument.field("limit", f"must be between 0 and {MAX_REDRIVE}")
    if len(request.comment) > MAX_COMMENT:
        raise errors.InvalidArgument.field("comment", f"is longer than {MAX_COMMENT} characters")
    principal = await backend.auth.acting_principal(context)
    key = request_ids.key_of(namespace, request, principal)
    limit = request.limit or DEFAULT_REDRIVE
    found = await backend.read(lambda c: dlq.matching(c, namespace, where, limit))
    # One transaction retries them all: a run someone else decided on since it was read is
    # passed over and not counted.
    operation = ops.RetryDeadLetters(namespace, found, principal, request.comment, where)
    return await request_ids.submitted(
        backend,
        context,
        key,
        operation,
        lambda done: ws.RedriveDeadLettersResponse(retried=done.retried, remaining=done.remaining),
        ws.RedriveDeadLettersResponse,
    )


def _checked(request: ws.RetryStepRequest | ws.SkipStepRequest) -> str:
    namespace = checked_namespace(request.namespace)
    if not request.run_id:
        raise errors.InvalidArgument.field("run_id", "is required")
    if not request.node_id:
        raise errors.InvalidArgument.field("node_id", "is required")
    if len(request.comment) > MAX_COMMENT:
        raise errors.InvalidArgument.field("comment", f"is longer than {MAX_COMMENT} characters")
    return namespace


def _filter(message: ws.DeadLetterFilter) -> dlq.DeadLetterFilter:
    return dead_letter_filter(message)


def _group_offset(token: str) -> int:
    """Groups are ordered by count, which changes as dead letters come and go: a page token
    is the position of the next group (a group may move across pages meanwhile)."""
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("g"))
    except ValueError:
        offset = -1
    if offset < 0:
        raise errors.InvalidArgument.field("page_token", "is not one this server issued")
    return offset


def _group_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"g{offset}".encode()).decode()


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
        step_version=row["step_version"],
        idempotency=row["idempotency"],
        error_signature=row["error_signature"],
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
        workflow_version=group.workflow_version,
        step_version=group.step_version,
        error_signature=group.error_signature,
        idempotency=group.idempotency,
        filter=ws.DeadLetterFilter(
            workflow_name=group.workflow_name,
            workflow_version=group.workflow_version,
            step_type=group.step_type,
            step_version=group.step_version,
            error_type=group.error_type,
            error_signature=group.error_signature,
        ),
    )
