"""The Alembic migrations: the only way the schema is made, so they must make `schema.py`."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from controlplane.store import schema
from controlplane.store.database import open_engine
from controlplane.store.migrate import (
    MIGRATIONS,
    alembic_config,
    current_revision,
    upgrade_database,
)

TABLES = {"definitions", "runs", "history", "tasks", "step_types"}


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), schema.metadata))


def test_migrations_create_every_table_in_an_empty_database(empty_database_url: str) -> None:
    revision = upgrade_database(empty_database_url)

    engine = open_engine(empty_database_url, pool_size=1)
    try:
        assert revision == head_revision() == current_revision(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_the_migrated_schema_is_what_schema_py_declares(engine: Engine) -> None:
    # Columns, types, nullability, indexes (partial ones included), unique and foreign keys.
    assert schema_differences(engine) == []


def test_upgrading_an_up_to_date_database_changes_nothing(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            schema.step_types.insert().values(
                namespace="default",
                name="charge-card",
                version="1",
                idempotency="key",
                retry="{}",
                updated_at=datetime.now(UTC),
            )
        )
    url = engine.url.render_as_string(hide_password=False)

    assert upgrade_database(url) == head_revision()
    assert upgrade_database(url) == head_revision()

    with engine.connect() as connection:
        assert connection.execute(schema.step_types.select()).one().name == "charge-card"
    assert schema_differences(engine) == []


def test_downgrading_to_nothing_and_upgrading_again_works(engine: Engine) -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert not TABLES & set(inspect(engine).get_table_names())

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []
