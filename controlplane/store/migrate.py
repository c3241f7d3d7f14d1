"""Applying the Alembic migrations: the only way the schema is created or changed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

from controlplane.store.database import open_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Held while migrating so that control planes starting together on a fresh database do not
# both try to create the schema (the loser would fail on alembic_version).
_MIGRATION_LOCK = 0x5375726566  # "Suref"


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade_engine(engine: Engine) -> str:
    """Bring the schema to the newest revision; returns that revision."""
    with engine.connect() as connection:
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()
        try:
            command.upgrade(alembic_config(connection), "head")
            connection.commit()
        finally:
            if postgres:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK}
                )
                connection.commit()
    return current_revision(engine)


def upgrade_database(url: str) -> str:
    """Bring the schema at `url` to the newest revision; returns that revision."""
    engine = open_engine(url, pool_size=1)
    try:
        return upgrade_engine(engine)
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() or ""
