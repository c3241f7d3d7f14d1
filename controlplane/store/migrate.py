"""Applying the Alembic migrations: the only way the schema is created or changed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from controlplane.store.database import open_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade_engine(engine: Engine) -> str:
    """Bring the schema to the newest revision; returns that revision."""
    command.upgrade(alembic_config(engine), "head")
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
