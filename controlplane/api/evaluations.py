"""surefoot.v1.EvaluationService: eval sets of versions, and the evaluations recorded.

Roles are api/access.py's (operator to put a set or record, viewer to read). Writes carry
request ids (api/request_ids.py) and run in one transaction each: a refusal writes nothing.
Recording a passed evaluation is what lets a `require_eval` version become "latest"
(store/definitions.py's `eligible`): no state is flipped here, the lookup reads the row.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Any

import grpc
from sqlalchemy import Connection, Engine
from surefoot.v1 import evaluation_service_pb2 as es
from surefoot.v1 import evaluation_service_pb2_grpc

from controlplane import errors
from controlplane.api import convert, request_ids
from controlplane.api.definitions import no_definition
from controlplane.api.namespaces import checked_namespace
from controlplane.auth.authenticator import Authenticator
from controlplane.evaluation import MAX_EVAL_SET_BYTES, EvalSetInvalid, parse_eval_set, text_hash
from controlplane.store import definitions as defs
from controlplane.store import evaluations as store
from controlplane.store.database import reader

KINDS = ("set", "recorded")
MAX_COMMENT = 2000
MAX_CASES = 10_000
DEFAULT_PAGE, MAX_PAGE = 50, 1000


class EvaluationService(evaluation_service_pb2_grpc.EvaluationServiceServicer):  # type: ignore[misc]
    def __init__(self, engine: Engine, auth: Authenticator) -> None:
        self._engine = engine
        self._auth = auth

    async def PutEvalSet(
        self, request: es.PutEvalSetRequest, context: grpc.aio.ServicerContext
    ) -> es.PutEvalSetResponse:
        namespace = checked_namespace(request.namespace)
        _require_name(request.workflow_name)
        if not request.workflow_version or request.workflow_version == "latest":
            raise errors.InvalidArgument.field("workflow_version", "must name a version")
        if not request.eval_set.strip():
            raise errors.InvalidArgument.field("eval_set", "is required")
        if len(request.eval_set.encode()) > MAX_EVAL_SET_BYTES:
            raise errors.InvalidArgument.field(
                "eval_set", f"is larger than {MAX_EVAL_SET_BYTES} bytes"
            )
        principal = await self._auth.acting_principal(context)
        label = f"{request.workflow_name}@{request.workflow_version}"

        def put(connection: Connection) -> es.PutEvalSetResponse:
            row = _version(connection, namespace, request)
            try:
                parse_eval_set(request.eval_set, row.message())
            except EvalSetInvalid as exc:
                raise errors.InvalidArgument.field("eval_set", str(exc)) from None
            stored, created = store.put_set(
                connection,
                row.id,
                namespace,
                label,
                request.eval_set,
                text_hash(request.eval_set),
                principal,
                datetime.now(UTC),
            )
            return es.PutEvalSetResponse(eval_set_hash=stored.content_hash, created=created)

        key = request_ids.key_of(namespace, request, principal)
        return await request_ids.written(
            self._engine, context, key, put, lambda made: made, es.PutEvalSetResponse
        )

    async def GetEvalSet(
        self, request: es.GetEvalSetRequest, context: grpc.aio.ServicerContext
    ) -> es.GetEvalSetResponse:
        namespace = checked_namespace(request.namespace)
        _require_name(request.workflow_name)

        def read(connection: Connection) -> es.GetEvalSetResponse:
            row = _version(connection, namespace, request)
            found = store.find_set(connection, row.id)
            if found is None:
                raise errors.NotFound(
                    f"{row.name}@{row.version} has no eval set (attach one with PutEvalSet)"
                )
            return es.GetEvalSetResponse(
                workflow_version=row.version,
                eval_set=found.body,
                eval_set_hash=found.content_hash,
            )

        return await self._read(read)

    async def RecordEvaluation(
        self, request: es.RecordEvaluationRequest, context: grpc.aio.ServicerContext
    ) -> es.RecordEvaluationResponse:
        if not request.HasField("evaluation"):
            raise errors.InvalidArgument.field("evaluation", "is required")
        given = request.evaluation
        namespace = checked_namespace(given.namespace)
        _check_evaluation(given)
        principal = await self._auth.acting_principal(context)

        def record(connection: Connection) -> es.RecordEvaluationResponse:
            row = _version(connection, namespace, given)
            if given.against_version and (
                defs.find(connection, namespace, given.workflow_name, given.against_version) is None
            ):
                raise errors.NotFound(
                    f"workflow {given.workflow_name}@{given.against_version} (against_version) "
                    f"is not registered in namespace {namespace!r}"
                )
            if given.kind == "set":
                found = store.find_set(connection, row.id)
                if found is None:
                    raise errors.FailedPrecondition(
                        f'{row.name}@{row.version} has no eval set: a "set" evaluation '
                        "needs the one attached with PutEvalSet"
                    )
                if given.eval_set_hash != found.content_hash:
                    raise errors.InvalidArgument.field(
                        "evaluation.eval_set_hash",
                        f"is not the hash of {row.name}@{row.version}'s eval set "
                        f"({found.content_hash[:12]}…)",
                    )
            made = store.record(connection, row.id, _row(given, namespace, principal))
            return es.RecordEvaluationResponse(evaluation=evaluation_message(made))

        key = request_ids.key_of(namespace, request, principal)
        return await request_ids.written(
            self._engine, context, key, record, lambda made: made, es.RecordEvaluationResponse
        )

    async def ListEvaluations(
        self, request: es.ListEvaluationsRequest, context: grpc.aio.ServicerContext
    ) -> es.ListEvaluationsResponse:
        namespace = checked_namespace(request.namespace)
        _require_name(request.workflow_name)
        if request.page_size < 0 or request.page_size > MAX_PAGE:
            raise errors.InvalidArgument.field("page_size", f"must be from 0 to {MAX_PAGE}")
        size = request.page_size or DEFAULT_PAGE
        after = _position(request.page_token)

        def read(connection: Connection) -> es.ListEvaluationsResponse:
            rows = store.list_page(
                connection,
                namespace,
                request.workflow_name,
                request.workflow_version,
                size + 1,
                after,
            )
            token = _token(rows[size - 1]) if len(rows) > size else ""
            return es.ListEvaluationsResponse(
                evaluations=[evaluation_message(r) for r in rows[:size]], next_page_token=token
            )

        return await self._read(read)

    async def GetEvaluation(
        self, request: es.GetEvaluationRequest, context: grpc.aio.ServicerContext
    ) -> es.GetEvaluationResponse:
        namespace = checked_namespace(request.namespace)
        if not request.id:
            raise errors.InvalidArgument.field("id", "is required")

        def read(connection: Connection) -> es.GetEvaluationResponse:
            found = store.get(connection, namespace, request.id)
            if found is None:
                raise errors.NotFound(
                    f"evaluation {request.id} not found in namespace {namespace!r}"
                )
            return es.GetEvaluationResponse(evaluation=evaluation_message(found))

        return await self._read(read)

    async def _read(self, work: Any) -> Any:
        def run() -> Any:
            with reader(self._engine).connect() as connection:
                return work(connection)

        return await asyncio.to_thread(run)


def _require_name(name: str) -> None:
    if not name:
        raise errors.InvalidArgument.field("workflow_name", "is required")


def _version(connection: Connection, namespace: str, request: Any) -> defs.DefinitionRow:
    row = defs.find(connection, namespace, request.workflow_name, request.workflow_version)
    if row is None:
        raise errors.NotFound(no_definition(request, namespace))
    return row


def _check_evaluation(given: es.Evaluation) -> None:
    """InvalidArgument for an evaluation whose figures cannot be true of any run."""
    field = "evaluation."
    _require_name(given.workflow_name)
    if not given.workflow_version or given.workflow_version == "latest":
        raise errors.InvalidArgument.field(field + "workflow_version", "must name a version")
    if given.kind not in KINDS:
        raise errors.InvalidArgument.field(field + "kind", 'must be "set" or "recorded"')
    for name in ("score", "threshold"):
        value = getattr(given, name)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise errors.InvalidArgument.field(field + name, "must be from 0 to 1")
    if given.cases < 0 or given.cases > MAX_CASES:
        raise errors.InvalidArgument.field(field + "cases", f"must be from 0 to {MAX_CASES}")
    if not 0 <= given.passed_cases <= given.cases:
        raise errors.InvalidArgument.field(field + "passed_cases", "must be from 0 to cases")
    if not 0 <= given.regressions <= given.cases:
        raise errors.InvalidArgument.field(field + "regressions", "must be from 0 to cases")
    if given.regressions and not given.against_version:
        raise errors.InvalidArgument.field(
            field + "regressions", "need an against_version to have regressed from"
        )
    if given.passed and given.score < given.threshold:
        raise errors.InvalidArgument.field(
            field + "passed", "cannot be true with a score below the threshold"
        )
    if given.case_results and len(given.case_results) != given.cases:
        raise errors.InvalidArgument.field(
            field + "case_results", "must hold every case (as many as cases) or none"
        )
    for index, case in enumerate(given.case_results):
        where = f"{field}case_results[{index}]."
        if not case.name:
            raise errors.InvalidArgument.field(where + "name", "is required")
        if not math.isfinite(case.score) or not 0.0 <= case.score <= 1.0:
            raise errors.InvalidArgument.field(where + "score", "must be from 0 to 1")
        if case.output_json:
            try:
                json.loads(case.output_json)
            except ValueError:
                raise errors.InvalidArgument.field(where + "output_json", "is not JSON") from None
    if len(given.comment) > MAX_COMMENT:
        raise errors.InvalidArgument.field(
            field + "comment", f"is longer than {MAX_COMMENT} characters"
        )


def _row(given: es.Evaluation, namespace: str, principal: str) -> store.EvaluationRow:
    return store.EvaluationRow(
        id="",
        namespace=namespace,
        workflow_name=given.workflow_name,
        workflow_version=given.workflow_version,
        kind=given.kind,
        against_version=given.against_version,
        score=given.score,
        threshold=given.threshold,
        passed=given.passed,
        cases=given.cases,
        passed_cases=given.passed_cases,
        regressions=given.regressions,
        eval_set_hash=given.eval_set_hash,
        recorded_by=principal,
        recorded_at=datetime.now(UTC),
        comment=given.comment,
        case_results=[
            {
                "name": c.name,
                "node_id": c.node_id,
                "passed": c.passed,
                "score": c.score,
                "output_json": c.output_json,
                "failures": list(c.failures),
                "regressed": c.regressed,
                "tokens": c.tokens,
                "latency_ms": c.latency_ms,
            }
            for c in given.case_results
        ],
    )


def evaluation_message(row: store.EvaluationRow) -> es.Evaluation:
    return es.Evaluation(
        id=row.id,
        namespace=row.namespace,
        workflow_name=row.workflow_name,
        workflow_version=row.workflow_version,
        kind=row.kind,
        against_version=row.against_version,
        score=row.score,
        threshold=row.threshold,
        passed=row.passed,
        cases=row.cases,
        passed_cases=row.passed_cases,
        regressions=row.regressions,
        eval_set_hash=row.eval_set_hash,
        recorded_by=row.recorded_by,
        recorded_at=convert.timestamp(row.recorded_at),
        comment=row.comment,
        case_results=[es.EvaluationCase(**case) for case in row.case_results],
    )


def _token(row: store.EvaluationRow) -> str:
    text = f"{row.recorded_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def _position(token: str) -> tuple[datetime, str] | None:
    if not token:
        return None
    try:
        at, _, last_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        when = datetime.fromisoformat(at)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise errors.InvalidArgument.field("page_token", "is not a token of this list") from None
    if when.tzinfo is None or not last_id:
        raise errors.InvalidArgument.field("page_token", "is not a token of this list")
    return when, last_id
