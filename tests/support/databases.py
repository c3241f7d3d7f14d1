"""A fresh database per test: a SQLite file, or a PostgreSQL database made and dropped for it."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

# The machines run PostgreSQL at 127.0.0.1:5432 with trust auth; a developer can point the
# tests elsewhere without editing them.
ADMIN_URL = os.environ.get(
    "SUREFOOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
KINDS = ("sqlite", "postgres")


class PostgresUnavailable(Exception):
    pass


def check_postgres() -> None:
    """Raises PostgresUnavailable, with the driver's reason, if the server cannot be used."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=5, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        raise PostgresUnavailable(f"PostgreSQL at {ADMIN_URL} is unreachable: {exc}") from exc


def require_postgres() -> None:
    """Skips the test when PostgreSQL is unreachable, or fails it when CI is set.

    In CI a skipped PostgreSQL test would turn a broken database setup into a green build.
    """
    try:
        check_postgres()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set: PostgreSQL tests must run)")
        pytest.skip(str(exc))


def _sqlalchemy_url(database: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(ADMIN_URL)
    user = info.get("user") or "postgres"
    password = f":{info['password']}" if info.get("password") else ""
    host = info.get("host") or "127.0.0.1"
    port = info.get("port") or "5432"
    return f"postgresql+psycopg://{user}{password}@{host}:{port}/{database}"


def _admin() -> psycopg.Connection:
    """An autocommit connection to the server (CREATE/DROP DATABASE refuse transactions)."""
    return psycopg.connect(ADMIN_URL, connect_timeout=5, autocommit=True)


def _drop(name: str) -> None:
    with _admin() as connection:
        # FORCE: a test that failed half-way may have left a connection open.
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


class _Templates:
    """One migrated database of each kind per test session, copied for every test.

    Copying a migrated database costs a file copy (PostgreSQL's CREATE DATABASE ... TEMPLATE,
    or shutil.copy of an SQLite file); running the migrations costs half a second per
    PostgreSQL database, and a control plane started on a copy finds nothing to migrate.
    The names are unique per session so that two test sessions on one server never share
    (or drop) each other's template.
    """

    def __init__(self) -> None:
        self._postgres: str | None = None
        self._sqlite: Path | None = None
        self._directory: Path | None = None

    def postgres(self) -> str:
        if self._postgres is None:
            name = f"sf_template_{uuid.uuid4().hex}"
            with _admin() as connection:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            atexit.register(_drop, name)
            _migrate(_sqlalchemy_url(name))
            self._postgres = name
        return self._postgres

    def sqlite(self) -> Path:
        if self._sqlite is None:
            self._directory = Path(tempfile.mkdtemp(prefix="sf_template_"))
            atexit.register(shutil.rmtree, self._directory, True)
            path = self._directory / "surefoot.db"
            _migrate(f"sqlite+pysqlite:///{path}")
            self._sqlite = path
        return self._sqlite


def _migrate(url: str) -> None:
    # Imported here: the helpers of tests that never need a migrated database stay light.
    from controlplane.store.migrate import upgrade_database

    upgrade_database(url)


_TEMPLATES = _Templates()


@contextmanager
def fresh_postgres_database(*, migrated: bool = True) -> Iterator[str]:
    """Creates `sf_test_<hex>`, yields its SQLAlchemy URL, then drops it, connections and all.

    Args:
        migrated: copy the session's migrated template (the default), or start with no
            tables at all (for tests of the migrations themselves, or of a foreign database).
    """
    name = f"sf_test_{uuid.uuid4().hex}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if migrated:
        template = _TEMPLATES.postgres()
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with _admin() as connection:
        connection.execute(create)
    try:
        yield _sqlalchemy_url(name)
    finally:
        _drop(name)


@contextmanager
def fresh_database(kind: str, directory: Path, *, migrated: bool = True) -> Iterator[str]:
    """The URL of a new database of `kind` ("sqlite" files live in `directory`), migrated to
    the newest schema unless `migrated` is False."""
    if kind == "sqlite":
        path = directory / "surefoot.db"
        if migrated:
            shutil.copyfile(_TEMPLATES.sqlite(), path)
        yield f"sqlite+pysqlite:///{path}"
    elif kind in ("postgres", "postgresql"):
        require_postgres()
        with fresh_postgres_database(migrated=migrated) as url:
            yield url
    else:
        raise ValueError(f"unknown database kind {kind!r}")


def database_params() -> list[object]:
    """pytest params over both stores; the PostgreSQL one carries the `postgres` mark."""
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
