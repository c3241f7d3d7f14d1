"""Step type declarations that workers register in their Hello, and the cache that hands the
engine an immutable snapshot of them per namespace.

The engine does no I/O (law 4): `catalog_for` reads the database here, before a transition,
and gives out a `StepTypes` the engine only looks things up in. Another control plane may
register step types too, so a namespace's snapshot is read again once it is older than
`REFRESH_SECONDS`: one small query per namespace per interval, never one per step.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from google.protobuf import json_format
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.dialects import postgresql, sqlite
from surefoot.v1 import common_pb2

from controlplane import errors
from controlplane.engine.retry import RetryPolicy
from controlplane.engine.step_types import (
    IDEMPOTENCY_NAMES,
    StepDeclaration,
    StepTypes,
    declaration_from_proto,
    retry_from_proto,
)
from controlplane.store.codec import dump_json, load_json, to_datetime
from controlplane.store.database import reader
from controlplane.store.schema import step_types

# The PostgreSQL channel told a namespace's name when its step types are registered.
STEP_TYPES_CHANNEL = "surefoot_step_types"
# How stale a namespace's snapshot may get before it is read again; what this control plane
# registers itself is seen at once.
REFRESH_SECONDS = 1.0
# Declarations of one Hello get times this far apart (the database's resolution), so that the
# last one declared is the newest on every path, even on a clock that repeats itself. Added to
# a datetime, not to the float epoch: at 1.7e9 s a float's rounding made two neighbours the
# same microsecond now and then, and the tie went to the greater version.
_DECLARATION_STEP = timedelta(microseconds=1)
# A snapshot that lacks a step type a transition needs is read again at most this often: a
# worker may just have declared it to another control plane.
MISS_RETRY_SECONDS = 0.25
# Reads of a namespace racing this control plane's own registrations before giving up.
_READS = 3


def _insert_for(connection: Connection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (PostgreSQL, SQLite 3.24+)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def upsert_step_types(
    connection: Connection, namespace: str, declarations: Iterable[common_pb2.StepTypeDeclaration]
) -> None:
    """Register a Hello's step types. A declaration is a contract (law 6): once a
    `name@version` is registered, its idempotency and retry policy never change. A Hello that
    declares one differently is refused (FAILED_PRECONDITION, naming each difference) and,
    the caller's transaction rolling back, changes nothing. Declaring it the same again makes
    it the newest of its name (a redeployed older version is what runs without a version)."""
    now = to_datetime(time.time())
    for index, declaration in enumerate(declarations):
        values = {
            "idempotency": IDEMPOTENCY_NAMES[declaration.idempotency],
            "retry": dump_json(json_format.MessageToDict(declaration.retry)),
            "description": declaration.description,
            "updated_at": now + index * _DECLARATION_STEP,
        }
        key = {"namespace": namespace, "name": declaration.name, "version": declaration.version}
        # One statement, not an update then an insert: two workers declaring a new step type
        # at the same moment (replicas of one deployment) both found nothing to update, and
        # the second insert broke its stream with an IntegrityError. Only the time and the
        # description are updated; the row, locked by it until commit, is then compared.
        insert = _insert_for(connection)(step_types).values(**key, **values)
        touched = {"updated_at": values["updated_at"], "description": values["description"]}
        connection.execute(insert.on_conflict_do_update(index_elements=list(key), set_=touched))
        stored = connection.execute(
            select(step_types.c.idempotency, step_types.c.retry).where(
                *(step_types.c[column] == value for column, value in key.items())
            )
        ).one()
        differences = declaration_differences(
            _declaration(stored.idempotency, stored.retry), declaration_from_proto(declaration)
        )
        if differences:
            raise errors.FailedPrecondition(
                f"step type {declaration.name}@{declaration.version} is already declared"
                f" differently in namespace {namespace!r} ({'; '.join(differences)}): a"
                " declaration is a contract and cannot change; declare a new version"
            )
    if connection.dialect.name == "postgresql":
        # Other control planes drop their snapshot of the namespace when this commits, so a
        # run entering through any of them is scheduled from what was just registered.
        connection.execute(
            text("SELECT pg_notify(:channel, :namespace)"),
            {"channel": STEP_TYPES_CHANNEL, "namespace": namespace},
        )


def declaration_differences(registered: StepDeclaration, declared: StepDeclaration) -> list[str]:
    """What `declared` changes in `registered`, one "field: registered X, declared Y" each;
    fields left at zero compare as the server defaults they stand for."""
    found = []
    if registered.idempotency != declared.idempotency:
        found.append(
            f"idempotency: registered {registered.idempotency}, declared {declared.idempotency}"
        )
    for field in dataclasses.fields(RetryPolicy):
        before = getattr(registered.retry, field.name)
        after = getattr(declared.retry, field.name)
        if before != after:
            shown = (list(v) if isinstance(v, tuple) else v for v in (before, after))
            was, now = shown
            found.append(f"retry.{field.name}: registered {was}, declared {now}")
    return found


def load_step_types(connection: Connection, namespace: str) -> StepTypes:
    """Every declaration of a namespace; the most recently registered version of a name is
    its newest (ties, which one Hello cannot make, go to the greater version)."""
    rows = connection.execute(
        select(
            step_types.c.name, step_types.c.version, step_types.c.idempotency, step_types.c.retry
        )
        .where(step_types.c.namespace == namespace)
        .order_by(step_types.c.updated_at, step_types.c.version)
    )
    return StepTypes.of(
        (row.name, row.version, _declaration(row.idempotency, row.retry)) for row in rows
    )


def _declaration(idempotency: str, retry_json: str) -> StepDeclaration:
    retry = json_format.ParseDict(load_json(retry_json), common_pb2.RetryPolicy())
    return StepDeclaration(idempotency, retry_from_proto(retry))


class StepCatalogCache:
    """A snapshot of each namespace's step types, read again when it gets stale."""

    def __init__(
        self,
        engine: Engine,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._refresh = refresh_seconds
        self._clock = clock
        # namespace -> (snapshot, when it was read from the database)
        self._snapshots: dict[str, tuple[StepTypes, float]] = {}
        # Bumped by each `remember`, so that a read that began before it cannot hide it.
        self._generation = 0
        self._lock = threading.Lock()

    def remember(
        self, namespace: str, declarations: Iterable[common_pb2.StepTypeDeclaration]
    ) -> None:
        """Declarations this control plane has just stored: usable at once, as the newest."""
        declared = [(d.name, d.version, declaration_from_proto(d)) for d in declarations]
        with self._lock:
            self._generation += 1
            found = self._snapshots.get(namespace)
            if found is None:
                return  # read in full on first use
            snapshot, read_at = found
            self._snapshots[namespace] = (snapshot.with_newer(declared), read_at)

    def forget(self, namespace: str) -> None:
        """Another control plane registered step types in `namespace`: the next use reads
        them (a notice on STEP_TYPES_CHANNEL, so not a second's staleness)."""
        with self._lock:
            self._generation += 1
            self._snapshots.pop(namespace, None)

    def catalog_for(
        self,
        namespace: str,
        connection: Connection | None = None,
        needs: Iterable[tuple[str, str]] = (),
    ) -> StepTypes:
        """The step types of `namespace` for a transition or a validation. A stale or missing
        snapshot is read on `connection` when given (the committer's transaction), else on a
        connection of its own; so is one that lacks a (name, version) in `needs`, at most
        every MISS_RETRY_SECONDS."""
        snapshot = StepTypes()
        for _ in range(_READS):
            now = self._clock()
            with self._lock:
                found = self._snapshots.get(namespace)
                if found is not None and now - found[1] < self._refresh:
                    age = now - found[1]
                    if age < MISS_RETRY_SECONDS or all(found[0](n, v) for n, v in needs):
                        return found[0]
                generation = self._generation
            snapshot = self._read(namespace, connection)
            with self._lock:
                if self._generation == generation:
                    self._snapshots[namespace] = (snapshot, now)
                    return snapshot
            # A registration landed while reading, and the read may predate it: read again.
        with self._lock:
            # Still racing registrations: use this read, and read again on the next call.
            self._snapshots[namespace] = (snapshot, -math.inf)
        return snapshot

    def _read(self, namespace: str, connection: Connection | None) -> StepTypes:
        if connection is not None:
            return load_step_types(connection, namespace)
        with reader(self._engine).connect() as own:
            return load_step_types(own, namespace)


class BatchCatalog:
    """The snapshots one transaction uses: looked up in the cache once per namespace and
    definition, not once per event (a batch applies hundreds of events)."""

    def __init__(self, cache: StepCatalogCache) -> None:
        self._cache = cache
        self._found: dict[tuple[str, frozenset[tuple[str, str]]], StepTypes] = {}

    def catalog_for(
        self,
        namespace: str,
        connection: Connection | None = None,
        needs: frozenset[tuple[str, str]] = frozenset(),
    ) -> StepTypes:
        key = (namespace, needs)
        found = self._found.get(key)
        if found is None:
            found = self._cache.catalog_for(namespace, connection, needs)
            self._found[key] = found
        return found
