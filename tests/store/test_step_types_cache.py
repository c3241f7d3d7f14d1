"""The step type cache: the snapshot it hands the engine, newest-wins, and seeing what another
control plane registered on the same database."""

from __future__ import annotations

from sqlalchemy import Engine
from surefoot.v1 import common_pb2

from controlplane.engine.step_types import StepTypes
from controlplane.store.step_types import StepCatalogCache, upsert_step_types


def declared(
    name: str, version: str, idempotency: common_pb2.Idempotency.ValueType, attempts: int
) -> common_pb2.StepTypeDeclaration:
    return common_pb2.StepTypeDeclaration(
        name=name,
        version=version,
        idempotency=idempotency,
        retry=common_pb2.RetryPolicy(max_attempts=attempts),
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def register(
    engine: Engine, cache: StepCatalogCache, *declarations: common_pb2.StepTypeDeclaration
) -> None:
    """What WorkerService does with a Hello: store, then remember."""
    with engine.begin() as connection:
        upsert_step_types(connection, "default", declarations)
    cache.remember("default", declarations)


def test_a_lookup_without_version_takes_the_newest_registration_on_every_path(
    engine: Engine,
) -> None:
    here = StepCatalogCache(engine)
    here.catalog_for("default")  # a snapshot exists, so `remember` updates it in memory
    # Version "2" first, then "1": the newest is the one registered last, not the greatest.
    register(engine, here, declared("charge", "2", common_pb2.IDEMPOTENCY_KEY, 2))
    register(engine, here, declared("charge", "1", common_pb2.IDEMPOTENCY_NONE, 1))
    # One Hello with two versions: the later one in it is the newer.
    register(
        engine,
        here,
        declared("refund", "b", common_pb2.IDEMPOTENCY_KEY, 3),
        declared("refund", "a", common_pb2.IDEMPOTENCY_NATURAL, 4),
    )

    in_memory = here.catalog_for("default")
    from_database = StepCatalogCache(engine).catalog_for("default")

    for snapshot in (in_memory, from_database):
        assert isinstance(snapshot, StepTypes)
        charge = snapshot("charge", "")
        assert charge is not None
        assert (charge.idempotency, charge.retry.max_attempts) == ("none", 1)
        refund = snapshot("refund", "")
        assert refund is not None
        assert (refund.idempotency, refund.retry.max_attempts) == ("natural", 4)
        pinned = snapshot("charge", "2")
        assert pinned is not None and pinned.idempotency == "key"
        assert snapshot("charge", "3") is None
        assert snapshot("ship", "") is None


def test_a_registration_on_another_control_plane_is_seen_after_the_refresh_interval(
    engine: Engine,
) -> None:
    clock = Clock()
    here = StepCatalogCache(engine, refresh_seconds=1.0, clock=clock)
    there = StepCatalogCache(engine, refresh_seconds=1.0, clock=clock)
    assert here.catalog_for("default")("charge", "") is None

    register(engine, there, declared("charge", "1", common_pb2.IDEMPOTENCY_KEY, 5))
    # Within the interval the snapshot stands: no query per transition.
    clock.now += 0.5
    assert here.catalog_for("default")("charge", "") is None

    clock.now += 0.6
    seen = here.catalog_for("default")("charge", "")
    assert seen is not None and seen.retry.max_attempts == 5

    # A new version on the other control plane is seen the same way (a declared version
    # never changes: see tests/worker_cluster).
    register(engine, there, declared("charge", "2", common_pb2.IDEMPOTENCY_NONE, 2))
    clock.now += 1.1
    updated = here.catalog_for("default")("charge", "")
    assert updated is not None and (updated.idempotency, updated.retry.max_attempts) == ("none", 2)


def test_a_step_type_a_transition_needs_is_looked_for_at_once_not_after_the_interval(
    engine: Engine,
) -> None:
    """A run started here just after a worker declared its step to another control plane
    must not dead-letter as undeclared because this one's snapshot is a second old."""
    clock = Clock()
    here = StepCatalogCache(engine, refresh_seconds=1.0, clock=clock)
    there = StepCatalogCache(engine, refresh_seconds=1.0, clock=clock)
    needs = [("charge", "1")]
    assert here.catalog_for("default", needs=needs)("charge", "1") is None

    register(engine, there, declared("charge", "1", common_pb2.IDEMPOTENCY_KEY, 5))
    # A miss is not looked for again at once: an undeclared step costs no query storm.
    clock.now += 0.1
    assert here.catalog_for("default", needs=needs)("charge", "1") is None
    clock.now += 0.2
    seen = here.catalog_for("default", needs=needs)("charge", "1")
    assert seen is not None and seen.retry.max_attempts == 5
    # What is not needed waits for the refresh interval as before.
    register(engine, there, declared("refund", "1", common_pb2.IDEMPOTENCY_KEY, 3))
    clock.now += 0.3
    assert here.catalog_for("default", needs=needs)("refund", "1") is None


def test_the_snapshot_reads_nothing_once_built(engine: Engine) -> None:
    cache = StepCatalogCache(engine, refresh_seconds=60.0, clock=Clock())
    register(engine, cache, declared("charge", "1", common_pb2.IDEMPOTENCY_KEY, 5))
    snapshot = cache.catalog_for("default")
    engine.dispose()
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM step_types")
    # The snapshot is plain data: what was deleted since is still in it, and the same
    # snapshot comes back within the interval.
    assert snapshot("charge", "") is not None
    assert cache.catalog_for("default") is snapshot
