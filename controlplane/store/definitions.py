"""Registered workflow definitions: immutable `name@version` rows holding the protobuf."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Engine, and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from surefoot.v1 import definition_pb2

from controlplane import errors
from controlplane.engine.definition import CompiledDefinition, compile_definition
from controlplane.engine.state import TERMINAL
from controlplane.store.codec import to_datetime, to_epoch
from controlplane.store.database import reader
from controlplane.store.schema import definitions, evaluations, runs


@dataclass(frozen=True)
class DefinitionRow:
    id: int
    namespace: str
    name: str
    version: str
    sequence: int
    content_hash: str
    deprecated: bool
    body: bytes
    registered_at: float = 0.0
    deprecated_by: str = ""
    deprecated_at: float | None = None
    deprecation_reason: str = ""

    def message(self) -> definition_pb2.WorkflowDefinition:
        return definition_pb2.WorkflowDefinition.FromString(self.body)


class VersionConflict(errors.AlreadyExists):
    """Different content under a version that is already registered."""


def content_hash(definition: definition_pb2.WorkflowDefinition) -> str:
    return hashlib.sha256(definition.SerializeToString(deterministic=True)).hexdigest()


# Concurrent registrations of one name each take max(sequence) + 1; the losers of that
# race try again with the winner's row visible. Far more tries than registrations racing.
REGISTER_TRIES = 50


def register(
    connection: Connection, namespace: str, definition: definition_pb2.WorkflowDefinition
) -> tuple[DefinitionRow, bool]:
    """Store `definition`; (row, created). Identical content again is a no-op.

    Safe against concurrent registrations of the same name from other transactions: each
    insert runs in a savepoint, and a lost race on the version or the sequence looks again.

    Raises:
        VersionConflict: the version exists with other content.
    """
    body = definition.SerializeToString(deterministic=True)
    digest = hashlib.sha256(body).hexdigest()
    for _ in range(REGISTER_TRIES):
        existing = find(connection, namespace, definition.name, definition.version)
        if existing is not None:
            if existing.content_hash != digest:
                raise VersionConflict(
                    f"{definition.name}@{definition.version} is already registered with "
                    f"other content (sha256:{existing.content_hash[:12]}); register a new "
                    "version"
                )
            return existing, False
        try:
            with connection.begin_nested():
                return _insert(connection, namespace, definition, body, digest), True
        except IntegrityError:
            # Another transaction committed this version or took the sequence meanwhile.
            continue
    raise errors.Unavailable(
        f"{definition.name}@{definition.version}: too many concurrent registrations; try again"
    )


def _insert(
    connection: Connection,
    namespace: str,
    definition: definition_pb2.WorkflowDefinition,
    body: bytes,
    digest: str,
) -> DefinitionRow:
    last = connection.execute(
        select(func.max(definitions.c.sequence)).where(
            definitions.c.namespace == namespace, definitions.c.name == definition.name
        )
    ).scalar()
    sequence = (last or 0) + 1
    created_at = to_datetime(time.time())
    # Through the column's precision (microseconds), so the row matches what a read returns.
    registered_at = to_epoch(created_at)
    values = {
        "namespace": namespace,
        "name": definition.name,
        "version": definition.version,
        "sequence": sequence,
        "content_hash": digest,
        "body": body,
        "deprecated": False,
        "created_at": created_at,
        "requires_eval": definition.require_eval,
    }
    inserted = connection.execute(definitions.insert().values(**values)).inserted_primary_key
    assert inserted is not None
    return DefinitionRow(
        registered_at=registered_at,
        id=int(inserted[0]),
        namespace=namespace,
        name=definition.name,
        version=definition.version,
        sequence=sequence,
        content_hash=digest,
        deprecated=False,
        body=body,
    )


def find(
    connection: Connection, namespace: str, name: str, version: str = ""
) -> DefinitionRow | None:
    """A version by label, or the newest eligible one for "" / "latest" (`eligible`)."""
    query = select(definitions).where(
        definitions.c.namespace == namespace, definitions.c.name == name
    )
    if version and version != "latest":
        query = query.where(definitions.c.version == version)
    else:
        query = query.where(eligible())
    row = connection.execute(query.order_by(definitions.c.sequence.desc()).limit(1)).first()
    return _row(row) if row is not None else None


def eligible() -> ColumnElement[bool]:
    """Whether a version may be "latest": not deprecated, and when its definition has
    require_eval, an evaluation of it passed."""
    passed = exists().where(
        evaluations.c.definition_id == definitions.c.id, evaluations.c.passed.is_(True)
    )
    return and_(
        definitions.c.deprecated.is_(False),
        or_(definitions.c.requires_eval.is_(False), passed),
    )


def in_flight(connection: Connection, definition_id: int) -> int:
    """How many runs of this version have not ended."""
    query = select(func.count()).where(
        runs.c.definition_id == definition_id, runs.c.status.not_in(sorted(TERMINAL))
    )
    return int(connection.execute(query).scalar_one())


def any_version(connection: Connection, namespace: str, name: str) -> bool:
    """Whether `name` has a version at all (deprecated ones included)."""
    query = select(definitions.c.id).where(
        definitions.c.namespace == namespace, definitions.c.name == name
    )
    return connection.execute(query.limit(1)).first() is not None


def set_deprecated(
    connection: Connection,
    row: DefinitionRow,
    deprecated: bool,
    principal: str,
    reason: str,
    now: float,
) -> tuple[DefinitionRow, bool]:
    """Deprecate or reinstate `row`'s version; (new row, changed). The body never changes."""
    if row.deprecated == deprecated:
        return row, False
    values: dict[str, object] = {
        "deprecated": deprecated,
        "deprecated_by": principal if deprecated else None,
        "deprecated_at": to_datetime(now) if deprecated else None,
        "deprecation_reason": reason if deprecated else None,
    }
    connection.execute(definitions.update().where(definitions.c.id == row.id).values(**values))
    changed = find(connection, row.namespace, row.name, row.version)
    assert changed is not None
    return changed, True


def list_with_counts(
    connection: Connection, namespace: str, name: str = ""
) -> list[tuple[DefinitionRow, int]]:
    """Every version with its number of runs still in flight, by name then sequence."""
    in_flight = (
        select(runs.c.definition_id, func.count().label("n"))
        .where(runs.c.status.not_in(sorted(TERMINAL)))
        .group_by(runs.c.definition_id)
        .subquery()
    )
    query = (
        select(definitions, func.coalesce(in_flight.c.n, 0).label("in_flight"))
        .select_from(
            definitions.outerjoin(in_flight, and_(in_flight.c.definition_id == definitions.c.id))
        )
        .where(definitions.c.namespace == namespace)
        .order_by(definitions.c.name, definitions.c.sequence)
    )
    if name:
        query = query.where(definitions.c.name == name)
    return [(_row(row), int(row.in_flight)) for row in connection.execute(query)]


def _row(row: object) -> DefinitionRow:
    mapping = row._mapping  # type: ignore[attr-defined]
    return DefinitionRow(
        id=mapping["id"],
        namespace=mapping["namespace"],
        name=mapping["name"],
        version=mapping["version"],
        sequence=mapping["sequence"],
        content_hash=mapping["content_hash"],
        deprecated=bool(mapping["deprecated"]),
        body=bytes(mapping["body"]),
        registered_at=to_epoch(mapping["created_at"]),
        deprecated_by=mapping["deprecated_by"] or "",
        deprecated_at=to_epoch(mapping["deprecated_at"]) if mapping["deprecated_at"] else None,
        deprecation_reason=mapping["deprecation_reason"] or "",
    )


class DefinitionCache:
    """Compiled definitions by id. Definitions are immutable, so entries never go stale."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._compiled: dict[int, CompiledDefinition] = {}
        self._lock = threading.Lock()

    def get(self, definition_id: int, connection: Connection | None = None) -> CompiledDefinition:
        with self._lock:
            found = self._compiled.get(definition_id)
        if found is not None:
            return found
        query = select(definitions.c.body).where(definitions.c.id == definition_id)
        if connection is not None:
            body = connection.execute(query).scalar_one()
        else:
            with reader(self._engine).connect() as own:
                body = own.execute(query).scalar_one()
        compiled = compile_definition(definition_pb2.WorkflowDefinition.FromString(body))
        with self._lock:
            self._compiled[definition_id] = compiled
        return compiled
