"""Eval sets and evaluations of definition versions (EvaluationService).

An eval set belongs to one registered version and, like the version, never changes: one row
per definition, keyed by its id. An evaluation is an outcome `surefoot eval` recorded; its
cases are kept as one JSON column, read whole when one evaluation is shown and never queried
into. Whether a `require_eval` version may be "latest" is a question on this table
(store/definitions.py asks it: a passed row for the version).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
)

from controlplane import errors
from controlplane.store.types import UtcDateTime


def define_tables(metadata: MetaData) -> tuple[Table, Table]:
    """`eval_sets` and `evaluations` on `metadata` (schema.py's: import them from there)."""
    eval_sets = Table(
        "eval_sets",
        metadata,
        Column("definition_id", Integer, ForeignKey("definitions.id"), primary_key=True),
        Column("namespace", String(200), nullable=False),
        # sha256 of `body`, which is the set's text exactly as it was put.
        Column("content_hash", String(64), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_by", String(300), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
    )
    evaluations = Table(
        "evaluations",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("namespace", String(200), nullable=False),
        Column("definition_id", Integer, ForeignKey("definitions.id"), nullable=False),
        Column("workflow_name", String(200), nullable=False),
        Column("workflow_version", String(100), nullable=False),
        # "set" or "recorded".
        Column("kind", String(16), nullable=False),
        Column("against_version", String(100), nullable=False),
        Column("score", Float, nullable=False),
        Column("threshold", Float, nullable=False),
        Column("passed", Boolean, nullable=False),
        Column("cases", Integer, nullable=False),
        Column("passed_cases", Integer, nullable=False),
        Column("regressions", Integer, nullable=False),
        Column("eval_set_hash", String(64), nullable=False),
        Column("recorded_by", String(300), nullable=False),
        Column("recorded_at", UtcDateTime(), nullable=False),
        Column("comment", Text, nullable=False),
        # JSON list of the cases (EvaluationCase fields), read only by GetEvaluation.
        Column("case_results", Text, nullable=False),
        Index("ix_evaluations_workflow", "namespace", "workflow_name", "recorded_at", "id"),
        # "Has this version passed?": the latest lookup asks it for require_eval versions.
        Index("ix_evaluations_passed", "definition_id", "passed"),
    )
    return eval_sets, evaluations


@dataclass(frozen=True)
class EvalSetRow:
    definition_id: int
    content_hash: str
    body: str


@dataclass(frozen=True)
class EvaluationRow:
    id: str
    namespace: str
    workflow_name: str
    workflow_version: str
    kind: str
    against_version: str
    score: float
    threshold: float
    passed: bool
    cases: int
    passed_cases: int
    regressions: int
    eval_set_hash: str
    recorded_by: str
    recorded_at: datetime
    comment: str
    # Each case as a JSON object; empty when the row was listed without them.
    case_results: list[dict[str, Any]] = field(default_factory=list)


class EvalSetConflict(errors.AlreadyExists):
    """Another eval set is already attached to the version."""


def _tables() -> tuple[Table, Table]:
    # schema.py imports this module to define the tables: read them from it at call time.
    from controlplane.store import schema

    return schema.eval_sets, schema.evaluations


def find_set(connection: Connection, definition_id: int) -> EvalSetRow | None:
    eval_sets, _ = _tables()
    query = select(eval_sets.c.content_hash, eval_sets.c.body).where(
        eval_sets.c.definition_id == definition_id
    )
    row = connection.execute(query).first()
    if row is None:
        return None
    return EvalSetRow(definition_id, row.content_hash, row.body)


def put_set(
    connection: Connection,
    definition_id: int,
    namespace: str,
    label: str,
    body: str,
    digest: str,
    principal: str,
    now: datetime,
) -> tuple[EvalSetRow, bool]:
    """Attach `body` to the version; (row, created). The same text again is a no-op.

    Raises:
        EvalSetConflict: the version has another set.
    """
    existing = find_set(connection, definition_id)
    if existing is not None:
        if existing.content_hash != digest:
            raise EvalSetConflict(
                f"{label} already has an eval set (sha256:{existing.content_hash[:12]}); an "
                "eval set is immutable: register a new version to change it"
            )
        return existing, False
    eval_sets, _ = _tables()
    connection.execute(
        eval_sets.insert().values(
            definition_id=definition_id,
            namespace=namespace,
            content_hash=digest,
            body=body,
            created_by=principal,
            created_at=now,
        )
    )
    return EvalSetRow(definition_id, digest, body), True


def record(connection: Connection, definition_id: int, evaluation: EvaluationRow) -> EvaluationRow:
    """Insert `evaluation` (its id is ignored: a new one is assigned) and return it."""
    _, evaluations = _tables()
    row = EvaluationRow(**{**evaluation.__dict__, "id": str(uuid.uuid4())})
    values = {**row.__dict__, "case_results": json.dumps(row.case_results)}
    connection.execute(evaluations.insert().values(definition_id=definition_id, **values))
    return row


def get(connection: Connection, namespace: str, evaluation_id: str) -> EvaluationRow | None:
    _, evaluations = _tables()
    query = select(evaluations).where(
        evaluations.c.namespace == namespace, evaluations.c.id == evaluation_id
    )
    row = connection.execute(query).first()
    return _row(row._mapping, with_cases=True) if row is not None else None


def list_page(
    connection: Connection,
    namespace: str,
    name: str,
    version: str,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[EvaluationRow]:
    """Up to `limit` evaluations newest first, after the (recorded_at, id) of a page's end."""
    _, evaluations = _tables()
    columns = [c for c in evaluations.c if c.name != "case_results"]
    query = select(*columns).where(
        evaluations.c.namespace == namespace, evaluations.c.workflow_name == name
    )
    if version:
        query = query.where(evaluations.c.workflow_version == version)
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(
                evaluations.c.recorded_at < at,
                and_(evaluations.c.recorded_at == at, evaluations.c.id < last_id),
            )
        )
    query = query.order_by(evaluations.c.recorded_at.desc(), evaluations.c.id.desc())
    return [_row(r._mapping, with_cases=False) for r in connection.execute(query.limit(limit))]


def _row(mapping: Any, with_cases: bool) -> EvaluationRow:
    return EvaluationRow(
        id=mapping["id"],
        namespace=mapping["namespace"],
        workflow_name=mapping["workflow_name"],
        workflow_version=mapping["workflow_version"],
        kind=mapping["kind"],
        against_version=mapping["against_version"],
        score=float(mapping["score"]),
        threshold=float(mapping["threshold"]),
        passed=bool(mapping["passed"]),
        cases=int(mapping["cases"]),
        passed_cases=int(mapping["passed_cases"]),
        regressions=int(mapping["regressions"]),
        eval_set_hash=mapping["eval_set_hash"],
        recorded_by=mapping["recorded_by"],
        recorded_at=mapping["recorded_at"],
        comment=mapping["comment"],
        case_results=json.loads(mapping["case_results"]) if with_cases else [],
    )
