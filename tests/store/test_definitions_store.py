"""Registered definitions are immutable `name@version` rows (law 6)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select, update

from controlplane.engine.events import CancelRequested
from controlplane.store import definitions
from controlplane.store.schema import definitions as definitions_table
from tests.store.stored_runs import T0, orders_definition, register, save_event, save_new_run


def count_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(definitions_table)).scalar_one()


def test_registering_stores_the_protobuf_under_name_and_version(engine: Engine) -> None:
    proto = orders_definition(version="1")
    with engine.begin() as connection:
        row, created = definitions.register(connection, "default", proto)

    assert created
    assert (row.namespace, row.name, row.version, row.sequence) == ("default", "orders", "1", 1)
    assert row.content_hash == definitions.content_hash(proto)
    assert not row.deprecated
    with engine.connect() as connection:
        found = definitions.find(connection, "default", "orders", "1")
    assert found == row
    assert found is not None and found.message() == proto


def test_registering_identical_content_again_is_a_no_op(engine: Engine) -> None:
    first = register(engine, orders_definition(version="1"))

    with engine.begin() as connection:
        again, created = definitions.register(
            connection, "default", orders_definition("orders", "1")
        )

    assert not created
    assert again == first
    assert count_rows(engine) == 1


def test_identical_content_is_recognised_whatever_the_map_order(engine: Engine) -> None:
    one = orders_definition()
    one.labels["team"] = "payments"
    one.labels["tier"] = "1"
    other = orders_definition()
    other.labels["tier"] = "1"
    other.labels["team"] = "payments"
    first = register(engine, one)

    with engine.begin() as connection:
        again, created = definitions.register(connection, "default", other)

    assert (again.id, created) == (first.id, False)


def test_different_content_under_a_used_version_is_refused_and_changes_nothing(
    engine: Engine,
) -> None:
    original = register(engine, orders_definition(version="1"))
    changed = orders_definition(version="1")
    changed.description = "now with gift wrapping"

    with pytest.raises(definitions.VersionConflict, match="orders@1"), engine.begin() as connection:
        definitions.register(connection, "default", changed)

    assert count_rows(engine) == 1
    with engine.connect() as connection:
        assert definitions.find(connection, "default", "orders", "1") == original


def test_sequence_follows_registration_order_not_the_version_label(engine: Engine) -> None:
    for version in ("2", "10", "1.5"):
        register(engine, orders_definition(version=version))
    register(engine, orders_definition(name="refunds", version="9"))
    register(engine, orders_definition(version="1"), namespace="other")

    with engine.connect() as connection:
        listed = definitions.list_with_counts(connection, "default")
        other = definitions.list_with_counts(connection, "other")

    # By name, then registration order; each name and namespace counts from 1.
    assert [(row.name, row.version, row.sequence) for row, _ in listed] == [
        ("orders", "2", 1),
        ("orders", "10", 2),
        ("orders", "1.5", 3),
        ("refunds", "9", 1),
    ]
    assert [(row.name, row.version, row.sequence) for row, _ in other] == [("orders", "1", 1)]


def test_latest_is_the_newest_registration_that_is_not_deprecated(engine: Engine) -> None:
    for version in ("2", "10", "1.5"):
        register(engine, orders_definition(version=version))

    with engine.connect() as connection:
        for label in ("", "latest"):
            latest = definitions.find(connection, "default", "orders", label)
            assert latest is not None and latest.version == "1.5"

    with engine.begin() as connection:
        connection.execute(
            update(definitions_table)
            .where(definitions_table.c.version == "1.5")
            .values(deprecated=True)
        )
    with engine.connect() as connection:
        latest = definitions.find(connection, "default", "orders")
        pinned = definitions.find(connection, "default", "orders", "1.5")
    assert latest is not None and latest.version == "10"
    # A deprecated version can still be asked for by name (runs pinned to it go on).
    assert pinned is not None and pinned.deprecated


def test_unknown_names_versions_and_other_namespaces_are_not_found(engine: Engine) -> None:
    register(engine, orders_definition(version="1"))
    with engine.connect() as connection:
        assert definitions.find(connection, "default", "orders", "2") is None
        assert definitions.find(connection, "default", "refunds") is None
        assert definitions.find(connection, "other", "orders") is None
        assert definitions.find(connection, "other", "orders", "1") is None


def test_list_with_counts_counts_runs_still_in_flight_per_version(engine: Engine) -> None:
    v1 = register(engine, orders_definition(version="1"))
    v2 = register(engine, orders_definition(version="2"))
    for run_id in ("a", "b", "c"):
        save_new_run(engine, v1, run_id, input={})
    save_event(engine, v1, "c", CancelRequested("done", "alice", T0 + 1))
    save_new_run(engine, v2, "d", input={})

    with engine.connect() as connection:
        counts = [
            (row.version, n) for row, n in definitions.list_with_counts(connection, "default")
        ]
        only = definitions.list_with_counts(connection, "default", name="refunds")

    assert counts == [("1", 2), ("2", 1)]
    assert only == []
