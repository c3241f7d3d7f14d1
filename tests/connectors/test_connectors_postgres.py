"""`surefoot.postgres` against the test PostgreSQL server: one transaction per step, rows as
JSON, errors classified, and a retried statement that is not run twice."""

from __future__ import annotations

import datetime
import decimal
import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from surefoot_connectors.postgres import json_safe
from surefoot_worker import NonRetryableError, RetryLaterError, StepDefinition

from tests.connectors.connector_calls import StepsFor, run_step
from tests.support.databases import fresh_postgres_database, require_postgres

pytestmark = pytest.mark.postgres

DB_PASSWORD = "db-pass-8c1e"


@pytest.fixture
def target_dsn() -> Iterator[str]:
    """A fresh database with a `signups` table, as a DSN whose password is a secret
    reference (the server trusts local connections, so any password will do)."""
    require_postgres()
    with fresh_postgres_database() as url:
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(
                "CREATE TABLE signups (id serial PRIMARY KEY, email text UNIQUE NOT NULL, "
                "plan text, amount numeric(10, 2), created_on date DEFAULT '2026-11-25')"
            )
        yield plain.replace("postgres@", "postgres:${secret:db_password}@")


def _steps(steps_with: StepsFor) -> dict[str, StepDefinition]:
    return steps_with({"DB_PASSWORD": DB_PASSWORD})


def _count(dsn: str) -> int:
    with psycopg.connect(dsn.replace("${secret:db_password}", DB_PASSWORD)) as connection:
        row = connection.execute("SELECT count(*) FROM signups").fetchone()
    assert row is not None
    return int(row[0])


def test_an_insert_returns_its_rows_as_json_and_runs_once(
    target_dsn: str, steps_with: StepsFor
) -> None:
    postgres = _steps(steps_with)["surefoot.postgres"]
    statement = {
        "dsn": target_dsn,
        "sql": "INSERT INTO signups (email, plan, amount) VALUES (%(email)s, %(plan)s, "
        "%(amount)s) RETURNING id, email, amount, created_on",
        "params": {"email": "ops@acme.test", "plan": "team", "amount": "49.90"},
    }
    first = run_step(postgres, statement, key="run-1:record", attempt=1)
    assert first == {
        "rows": [
            {"id": 1, "email": "ops@acme.test", "amount": "49.90", "created_on": "2026-11-25"}
        ],
        "rowcount": 1,
        "truncated": False,
    }
    # The retry of the same step (its worker died before reporting) inserts nothing more.
    assert run_step(postgres, statement, key="run-1:record", attempt=2) == first
    assert _count(target_dsn) == 1


def test_a_select_with_positional_params_and_a_row_limit(
    target_dsn: str, steps_with: StepsFor
) -> None:
    postgres = _steps(steps_with)["surefoot.postgres"]
    insert = "INSERT INTO signups (email) SELECT 'u' || g || '@x.test' FROM generate_series(1, 5) g"
    assert run_step(postgres, {"dsn": target_dsn, "sql": insert})["rowcount"] == 5
    output = run_step(
        postgres,
        {
            "dsn": target_dsn,
            "sql": "SELECT email FROM signups WHERE id > %s ORDER BY id",
            "params": [1],
            "max_rows": 2,
        },
    )
    assert output["rows"] == [{"email": "u2@x.test"}, {"email": "u3@x.test"}]
    assert output["truncated"] is True


def test_bad_sql_and_violated_constraints_fail_without_retry_and_roll_back(
    target_dsn: str, steps_with: StepsFor
) -> None:
    postgres = _steps(steps_with)["surefoot.postgres"]
    with pytest.raises(NonRetryableError) as raised:
        run_step(postgres, {"dsn": target_dsn, "sql": "SELEKT 1"})
    assert raised.value.type == "PostgresSyntaxError"
    assert "SQLSTATE 42601" in raised.value.message

    duplicate = {
        "dsn": target_dsn,
        "sql": "INSERT INTO signups (email) VALUES (%(e)s), (%(e)s)",
        "params": {"e": "twice@x.test"},
    }
    with pytest.raises(NonRetryableError) as raised:
        run_step(postgres, duplicate, key="run-2:record", attempt=1)
    assert raised.value.type == "PostgresUniqueViolation"
    assert _count(target_dsn) == 0
    # A definite failure leaves no record: once fixed, the same step runs.
    fixed = {**duplicate, "sql": "INSERT INTO signups (email) VALUES (%(e)s)"}
    assert run_step(postgres, fixed, key="run-2:record", attempt=2)["rowcount"] == 1


def test_an_unreachable_server_is_retried_and_the_password_never_shows(
    steps_with: StepsFor,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dsn = f"postgresql://app:${{secret:db_password}}@127.0.0.1:{port}/app"
    with pytest.raises(RetryLaterError) as raised:
        run_step(_steps(steps_with)["surefoot.postgres"], {"dsn": dsn, "sql": "SELECT 1"})
    assert raised.value.type == "PostgresOperationalError"
    assert DB_PASSWORD not in raised.value.message


def test_values_become_json() -> None:
    assert json_safe(decimal.Decimal("0.10")) == "0.10"
    assert json_safe(datetime.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05"
    assert json_safe(datetime.timedelta(minutes=2)) == 120.0
    assert json_safe(float("nan")) == "nan"
    assert json_safe(b"\x01\xff") == "01ff"
    assert json_safe(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert json_safe({"a": [decimal.Decimal(1)]}) == {"a": ["1"]}


def test_params_of_the_wrong_shape_are_bad_input_and_the_fixed_step_runs(
    target_dsn: str, steps_with: StepsFor
) -> None:
    """psycopg says so with a TypeError, raised before anything ran: it must not read as a
    call that may have happened, which would keep the step from ever running."""
    postgres = _steps(steps_with)["surefoot.postgres"]
    named = "INSERT INTO signups (email) VALUES (%(email)s)"
    with pytest.raises(NonRetryableError) as raised:
        run_step(postgres, {"dsn": target_dsn, "sql": named, "params": ["a@x.test"]}, "run-3:r")
    assert raised.value.type == "ConnectorInputInvalid"
    assert "params" in raised.value.message and "mapping" in raised.value.message
    with pytest.raises(NonRetryableError) as raised:
        run_step(
            postgres,
            {"dsn": target_dsn, "sql": "SELECT %s", "params": {"a": 1}},
            key="run-3:other",
        )
    assert raised.value.type == "ConnectorInputInvalid"

    fixed = {"dsn": target_dsn, "sql": named, "params": {"email": "a@x.test"}}
    assert run_step(postgres, fixed, key="run-3:r", attempt=2)["rowcount"] == 1
    assert _count(target_dsn) == 1


def test_only_one_statement_runs_so_the_step_stays_one_transaction(
    target_dsn: str, steps_with: StepsFor
) -> None:
    """Several statements would commit on a COMMIT among them, then fail on the next one,
    and the failure would be taken for a rolled-back step that may run again."""
    postgres = _steps(steps_with)["surefoot.postgres"]
    stacked = "INSERT INTO signups (email) VALUES ('a@x.test'); COMMIT; SELECT 1 / 0"
    with pytest.raises(NonRetryableError) as raised:
        run_step(postgres, {"dsn": target_dsn, "sql": stacked}, key="run-4:r")
    assert raised.value.type == "PostgresSyntaxError"
    assert "multiple commands" in raised.value.message
    assert _count(target_dsn) == 0
    # A literal % needs no escaping when there are no params, as before.
    output = run_step(postgres, {"dsn": target_dsn, "sql": "SELECT '50%' AS share"})
    assert output["rows"] == [{"share": "50%"}]
