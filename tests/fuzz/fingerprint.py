"""A cheap fingerprint of everything a control plane stored, to prove a refusal wrote nothing.

Per table: its row count and the sum of a hash of every row, so an UPDATE shows as well as
an INSERT or DELETE. One query, one round trip: a few milliseconds on the small databases of
the fuzz tests, cheap enough to take after every write request. Tables are found in the
catalog, so tables a later migration adds are covered without changing this file.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql

from tests.support.eventually import assert_eventually

Fingerprint = dict[str, tuple[int, int]]
# Written by migrations only.
_IGNORED = frozenset({"alembic_version"})


def psycopg_url(sqlalchemy_url: str) -> str:
    """The libpq URL of a `postgresql+psycopg://` SQLAlchemy URL."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


class DatabaseFingerprint:
    """Fingerprints of one PostgreSQL database, over one autocommit connection."""

    def __init__(self, sqlalchemy_url: str) -> None:
        self._connection = psycopg.connect(psycopg_url(sqlalchemy_url), autocommit=True)
        self._query: sql.Composed | None = None

    def close(self) -> None:
        self._connection.close()

    def _tables(self) -> list[str]:
        rows = self._connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).fetchall()
        return [name for (name,) in rows if name not in _IGNORED]

    def _build(self, tables: Iterable[str]) -> sql.Composed:
        parts = [
            sql.SQL(
                "SELECT {name}, count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)"
                " FROM {table} AS t"
            ).format(name=sql.Literal(table), table=sql.Identifier(table))
            for table in tables
        ]
        return sql.SQL(" UNION ALL ").join(parts)

    def take(self) -> Fingerprint:
        if self._query is None:
            self._query = self._build(self._tables())
        rows = self._connection.execute(self._query).fetchall()
        return {name: (int(count), int(digest)) for name, count, digest in rows}

    def settled(self, timeout: float = 30.0) -> Fingerprint:
        """The fingerprint once two readings in a row agree: what an accepted request set
        in motion (a delivery, a wake-up) has been committed."""
        last: list[Fingerprint] = [self.take()]

        def stable() -> Fingerprint | None:
            now = self.take()
            before, last[0] = last[0], now
            return now if now == before else None

        return assert_eventually(stable, timeout, interval=0.02, message="the database settles")


def difference(before: Fingerprint, after: Fingerprint) -> dict[str, str]:
    """What changed between two fingerprints, by table, for a failure message."""
    changed: dict[str, str] = {}
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table), after.get(table)
        if old != new:
            old_rows = old[0] if old else 0
            new_rows = new[0] if new else 0
            changed[table] = f"{old_rows} -> {new_rows} rows" + (
                " (contents changed)" if old_rows == new_rows else ""
            )
    return changed
