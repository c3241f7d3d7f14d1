"""What counts as a lost database, how long a loop waits for it, and what the log says."""

from __future__ import annotations

import logging
import sqlite3

import psycopg
import pytest
from psycopg import errors as pg_errors
from sqlalchemy import exc as sa_exc

from controlplane.store.reachability import Backoff, Reachability, is_unreachable


def wrapped(error: BaseException, invalidated: bool = False) -> sa_exc.DBAPIError:
    """`error` as SQLAlchemy raises it for a statement."""
    made = sa_exc.DBAPIError.instance(
        "SELECT 1", None, error, Exception, connection_invalidated=invalidated
    )
    assert isinstance(made, sa_exc.DBAPIError)
    return made


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("connection refused"),  # no SQLSTATE: never reached it
        pg_errors.AdminShutdown("terminating connection due to administrator command"),
        pg_errors.CannotConnectNow("the database system is starting up"),
        pg_errors.TooManyConnections("too many clients already"),
        pg_errors.ConnectionFailure("connection failure"),
    ],
)
def test_a_database_that_cannot_serve_is_unreachable(error: psycopg.Error) -> None:
    assert is_unreachable(error)
    assert is_unreachable(wrapped(error))


@pytest.mark.parametrize(
    "error",
    [
        wrapped(pg_errors.QueryCanceled("canceling statement due to statement timeout")),
        wrapped(pg_errors.UniqueViolation("duplicate key")),
        wrapped(pg_errors.StringDataRightTruncation("value too long")),
        # SQLite's OperationalError also means "no such table": the statement's own error.
        wrapped(sqlite3.OperationalError("no such table: runs")),
        ValueError("not a database error"),
    ],
)
def test_a_statement_refused_is_not_an_outage(error: BaseException) -> None:
    assert not is_unreachable(error)


def test_a_connection_the_pool_gave_up_on_is_unreachable() -> None:
    assert is_unreachable(wrapped(sqlite3.OperationalError("disk I/O error"), invalidated=True))
    assert is_unreachable(sa_exc.DisconnectionError("gone"))


def test_backoff_doubles_from_its_first_step_up_to_its_cap_with_jitter() -> None:
    lowest = Backoff(first=0.05, cap=1.0, uniform=lambda: 0.0)
    highest = Backoff(first=0.05, cap=1.0, uniform=lambda: 0.999999)
    low = [lowest.next() for _ in range(10)]
    high = [highest.next() for _ in range(10)]
    assert low[:5] == pytest.approx([0.025, 0.05, 0.1, 0.2, 0.4])
    assert high[:5] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8], rel=1e-5)
    # However long the outage, a try is at most a second after the last one.
    assert low[5:] == pytest.approx([0.5] * 5)
    assert max(high) <= 1.0
    assert lowest.tries == 10
    lowest.reset()
    assert (lowest.tries, lowest.next()) == (0, pytest.approx(0.025))


def test_one_line_when_the_database_goes_and_one_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [100.0]
    state = Reachability(clock=lambda: 1_800_000_000.0, monotonic=lambda: clock[0])
    refused = wrapped(psycopg.OperationalError("connection refused\nis the server running?"))
    with caplog.at_level(logging.INFO, logger="surefoot.database"):
        state.reached()
        for _ in range(1000):  # every loop and every RPC of the outage
            state.lost(refused)
        clock[0] += 12.5
        state.reached()
        state.reached()
    assert not state.down
    assert [r.getMessage() for r in caplog.records] == [
        "database unreachable since 2027-01-15T08:00:00+00:00: "
        "connection refused is the server running?",
        "database back after 12.5 s",
    ]
