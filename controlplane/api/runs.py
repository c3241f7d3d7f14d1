"""Runs on WorkflowService: start, read, list, read history, cancel or abandon."""

from __future__ import annotations

import time
from typing import Any

import grpc
from sqlalchemy import Connection
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane import errors
from controlplane.api import blocked_on, convert, request_ids, run_filters, run_links, run_wait
from controlplane.api.backend import Backend
from controlplane.api.definitions import no_definition
from controlplane.api.namespaces import checked_namespace
from controlplane.api.payloads import parse_json
from controlplane.dispatch import operations as ops
from controlplane.engine.state import RunState, StepState
from controlplane.store import run_queries
from controlplane.store.blocked_queries import BlockingRows, blocking_rows
from controlplane.store.codec import load_json
from controlplane.store.run_forks import ForkLink, links_of
from controlplane.store.schema import forks

MAX_PAGE = 1000
MAX_REQUEST_ID = 200


async def start(
    backend: Backend, request: ws.StartRunRequest, context: grpc.aio.ServicerContext
) -> ws.StartRunResponse:
    namespace = checked_namespace(request.namespace)
    if not request.workflow_name:
        raise errors.InvalidArgument.field("workflow_name", "is required")
    if len(request.request_id) > MAX_REQUEST_ID:
        raise errors.InvalidArgument.field("request_id", f"is longer than {MAX_REQUEST_ID}")
    value = parse_json("input", request.input, empty={})
    wait = run_wait.checked_wait(request)
    operation = ops.StartRun(
        namespace,
        request.workflow_name,
        request.workflow_version,
        value,
        request.request_id,
        await backend.auth.acting_principal(context),
        wait=wait > 0,
    )
    try:
        started: ops.StartedRun = await backend.committer.submit(operation)
    except errors.NotFound:
        # The dispatcher knows the name; the caller also asked for a version and namespace.
        raise errors.NotFound(no_definition(request, namespace)) from None
    status, output = started.status, started.output
    if wait > 0:
        wait = run_wait.within_deadline(wait, context.time_remaining())
        status, output = await run_wait.wait_for_end(backend, namespace, operation, started, wait)
    return run_wait.answer(started, status, output)


async def get(
    backend: Backend, request: ws.GetRunRequest, context: grpc.aio.ServicerContext
) -> ws.GetRunResponse:
    namespace = checked_namespace(request.namespace)
    return ws.GetRunResponse(run=await run_detail(backend, namespace, request.run_id))


async def run_detail(backend: Backend, namespace: str, run_id: str) -> run_pb2.Run:
    """The run with its steps and attempts as a GetRun shows it, and what it is blocked on;
    NotFound if there is none."""

    def query(
        c: Connection,
    ) -> tuple[run_queries.RunView, dict[str, StepState], BlockingRows, list[ForkLink]] | None:
        view = run_queries.get_run(c, namespace, run_id)
        if view is None:
            return None
        _, steps = RunState.steps_from_json(load_json(view.run.state))
        rows = blocking_rows(c, namespace, run_id, steps, time.time())
        return view, steps, rows, links_of(c, forks, run_id)

    found = await backend.read(query)
    if found is None:
        raise errors.NotFound(no_run(run_id, namespace))
    view, steps, rows, links = found
    run = convert.run_detail(view)
    run_links.add_links(run, links)
    committer = backend.committer
    circumstances = blocked_on.Circumstances(
        now=time.time(),
        lease_seconds=committer.lease_seconds,
    )
    run.blocked_on.extend(blocked_on.blockers(view.run, steps, view.tasks, rows, circumstances))
    return run


async def list_page(
    backend: Backend, request: ws.ListRunsRequest, context: grpc.aio.ServicerContext
) -> ws.ListRunsResponse:
    """A page of the runs the filters select, newest first, and how many they select.

    Raises:
        InvalidArgument: a bad page size, status, time range, run id prefix or page token.
    """
    namespace = checked_namespace(request.namespace)
    if not 0 <= request.page_size <= MAX_PAGE:
        raise errors.InvalidArgument.field("page_size", f"must be between 0 and {MAX_PAGE}")
    selection = run_filters.checked_selection(namespace, request)

    def query(c: Connection) -> tuple[list[Any], str, int]:
        size = request.page_size or 100
        if selection.statuses:
            # Counted first (the status index's range): how many match decides how the
            # page is best read (run_queries.page_query).
            total = run_queries.count_runs(c, selection)
            rows, token = run_queries.page_of_runs(
                c, selection, size, request.page_token, matching=total
            )
            return rows, token, total
        rows, token = run_queries.page_of_runs(c, selection, size, request.page_token)
        # A first page that is the whole list counts itself: no second statement.
        if not request.page_token and not token:
            return rows, token, len(rows)
        return rows, token, run_queries.count_runs(c, selection)

    try:
        rows, token, total = await backend.read(query)
    except run_queries.BadPageToken as exc:
        raise errors.InvalidArgument.field("page_token", str(exc)) from None
    return ws.ListRunsResponse(
        runs=[convert.run_summary(r) for r in rows], next_page_token=token, total=total
    )


async def history(
    backend: Backend, request: ws.GetRunHistoryRequest, context: grpc.aio.ServicerContext
) -> ws.GetRunHistoryResponse:
    namespace = checked_namespace(request.namespace)
    if request.after_seq < 0 or request.limit < 0:
        raise errors.InvalidArgument.field("after_seq", "after_seq and limit must not be negative")

    def query(c: Connection) -> list[Any] | None:
        if not run_queries.run_exists(c, namespace, request.run_id):
            return None
        return run_queries.read_history(c, request.run_id, request.after_seq, request.limit)

    rows = await backend.read(query)
    if rows is None:
        raise errors.NotFound(no_run(request.run_id, namespace))
    return ws.GetRunHistoryResponse(events=[convert.history_event(r) for r in rows])


async def cancel(
    backend: Backend, request: ws.CancelRunRequest, context: grpc.aio.ServicerContext
) -> ws.CancelRunResponse:
    namespace = checked_namespace(request.namespace)
    if not request.run_id:
        raise errors.InvalidArgument.field("run_id", "is required")
    principal = await backend.auth.acting_principal(context)
    operation = ops.CancelRun(
        namespace, request.run_id, request.reason, principal, compensate=request.compensate
    )
    # The run as the cancelling transaction left it: no second read, no later change mixed in.
    return await request_ids.submitted(
        backend,
        context,
        request_ids.key_of(namespace, request, principal),
        operation,
        lambda committed: ws.CancelRunResponse(run=convert.run_detail(committed.view)),
        ws.CancelRunResponse,
    )


def no_run(run_id: str, namespace: str) -> str:
    return f"run {run_id} not found in namespace {namespace!r}"
