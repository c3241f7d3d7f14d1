"""Step type declarations that workers register in their Hello, and a cache the engine reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from google.protobuf import json_format
from sqlalchemy import Connection, Engine, select
from surefoot.v1 import common_pb2

from controlplane.engine.definition import (
    IDEMPOTENCY_NAMES,
    StepCatalog,
    StepDeclaration,
    retry_from_proto,
)
from controlplane.store.codec import dump_json, load_json, to_datetime
from controlplane.store.database import reader
from controlplane.store.schema import step_types

# A miss is looked up again at most this often, so an undeclared step costs no query storm.
MISS_TTL_SECONDS = 2.0


def upsert_step_types(
    connection: Connection, namespace: str, declarations: Iterable[common_pb2.StepTypeDeclaration]
) -> None:
    now = to_datetime(time.time())
    for declaration in declarations:
        values = {
            "idempotency": IDEMPOTENCY_NAMES[declaration.idempotency],
            "retry": dump_json(json_format.MessageToDict(declaration.retry)),
            "description": declaration.description,
            "updated_at": now,
        }
        key = {"namespace": namespace, "name": declaration.name, "version": declaration.version}
        updated = connection.execute(
            step_types.update()
            .where(
                step_types.c.namespace == namespace,
                step_types.c.name == declaration.name,
                step_types.c.version == declaration.version,
            )
            .values(**values)
        )
        if updated.rowcount == 0:
            connection.execute(step_types.insert().values(**key, **values))


class StepCatalogCache:
    """Declarations by (namespace, step type, version), read through to the database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._known: dict[tuple[str, str, str], StepDeclaration] = {}
        self._misses: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def remember(
        self, namespace: str, declarations: Iterable[common_pb2.StepTypeDeclaration]
    ) -> None:
        with self._lock:
            for d in declarations:
                declared = StepDeclaration(
                    IDEMPOTENCY_NAMES[d.idempotency], retry_from_proto(d.retry)
                )
                self._known[(namespace, d.name, d.version)] = declared
                self._misses.pop((namespace, d.name, d.version), None)
                self._misses.pop((namespace, d.name, ""), None)

    def catalog_for(self, namespace: str, connection: Connection | None = None) -> StepCatalog:
        """A StepCatalog (name, version) -> declaration for one namespace; misses are read
        on `connection` when given (the committer's transaction), else on a new one."""

        def lookup(name: str, version: str) -> StepDeclaration | None:
            return self.lookup(namespace, name, version, connection)

        return lookup

    def lookup(
        self, namespace: str, name: str, version: str, connection: Connection | None = None
    ) -> StepDeclaration | None:
        key = (namespace, name, version)
        with self._lock:
            found = self._known.get(key)
            if found is not None:
                return found
            if not version:
                for (ns, n, _v), declared in self._known.items():
                    if ns == namespace and n == name:
                        return declared
            missed_at = self._misses.get(key)
            if missed_at is not None and time.monotonic() - missed_at < MISS_TTL_SECONDS:
                return None
        found = self._load(namespace, name, version, connection)
        with self._lock:
            if found is None:
                self._misses[key] = time.monotonic()
            else:
                self._known[key] = found
        return found

    def _load(
        self, namespace: str, name: str, version: str, connection: Connection | None
    ) -> StepDeclaration | None:
        query = select(step_types.c.idempotency, step_types.c.retry).where(
            step_types.c.namespace == namespace, step_types.c.name == name
        )
        if version:
            query = query.where(step_types.c.version == version)
        query = query.order_by(step_types.c.updated_at.desc()).limit(1)
        if connection is not None:
            row = connection.execute(query).first()
        else:
            with reader(self._engine).connect() as own:
                row = own.execute(query).first()
        if row is None:
            return None
        retry = json_format.ParseDict(load_json(row.retry), common_pb2.RetryPolicy())
        return StepDeclaration(row.idempotency, retry_from_proto(retry))
