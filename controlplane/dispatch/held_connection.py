"""The committer's database connection: held from one batch to the next.

Taken from the pool for every batch, a connection costs a round trip before any work (the
pool's liveness ping) and the pool's bookkeeping, which at one run in flight is a sizeable
part of a step. The committer is the only user of this one, so it keeps it, and gives it back
when a batch fails (its state is then unknown: the next batch takes a fresh one) or when it
sat idle long enough that a firewall or the server may have dropped it unnoticed.

On PostgreSQL a batch's writes and its COMMIT go out as one pipeline (psycopg's pipeline
mode): statements whose results nobody reads need no round trip each.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from sqlalchemy import Connection, Engine

# Idle longer than this, the connection is given back and a pinged one taken instead.
IDLE_SECONDS = 30.0


class HeldConnection:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pipelines = engine.dialect.name == "postgresql"
        self._connection: Connection | None = None
        self._used_at = 0.0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """The connection, in a transaction the caller commits (`commit`); rolled back and
        let go if the block raises."""
        connection = self._take()
        try:
            connection.begin()
            yield connection
        except BaseException:
            self.release()
            raise
        finally:
            self._used_at = time.monotonic()

    @contextlib.contextmanager
    def writes(self, connection: Connection) -> Iterator[None]:
        """Statements in this block are sent without waiting for their results (PostgreSQL):
        only for statements whose results are not read, up to and including the commit."""
        if not self._pipelines:
            yield
            return
        with connection.connection.driver_connection.pipeline():  # type: ignore[union-attr]
            yield

    def release(self) -> None:
        """Give the connection back (invalidated: its state may be anything)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.invalidate()
            with contextlib.suppress(Exception):
                connection.close()

    def _take(self) -> Connection:
        if self._connection is not None and time.monotonic() - self._used_at > IDLE_SECONDS:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):
                connection.close()
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection
