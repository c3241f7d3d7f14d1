"""``surefoot.postgres``: run one parameterised SQL statement in its own transaction.

The statement runs once: its outcome is recorded (see ``dedupe.py``), so an ``INSERT`` whose
worker died after the commit is not inserted again by the retry. The rows come back as JSON:
dates and times as ISO 8601 text, decimals as text (exact), bytes as hex.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import math
import uuid
from typing import Any

import psycopg
from surefoot_worker import RetryPolicy

from surefoot_connectors.call import ConnectorCall, ConnectorFailure
from surefoot_connectors.registry import Connector

DEFAULT_MAX_ROWS = 1000
# SQLSTATE classes after which the same statement may succeed: connection trouble (08),
# serialization failures and deadlocks (40), insufficient resources (53), operator
# intervention such as a restart or a statement timeout (57), system errors (58).
_RETRYABLE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_RETRYABLE_STATES = frozenset({"55P03"})  # lock_not_available

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "surefoot.postgres input",
    "type": "object",
    "required": ["dsn", "sql"],
    "additionalProperties": False,
    "properties": {
        "dsn": {
            "type": "string",
            "minLength": 1,
            "description": "libpq connection string or postgresql:// URL; put the password "
            "in ${secret:NAME}",
        },
        "sql": {
            "type": "string",
            "minLength": 1,
            "description": "one statement; placeholders %(name)s with named params, %s with a list",
        },
        "params": {
            "type": ["object", "array"],
            "description": "the statement's parameters: an object (named) or a list",
        },
        "max_rows": {
            "type": "integer",
            "minimum": 0,
            "default": DEFAULT_MAX_ROWS,
            "description": "rows returned at most; more are cut and marked truncated",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 3600,
            "default": 30,
            "description": "connect timeout and statement timeout",
        },
    },
}


def run_statement(call: ConnectorCall) -> dict[str, Any]:
    """Run the statement and commit; the output is ``{rows, rowcount, truncated}``.

    Raises:
        ConnectorFailure: ``Postgres<Error>`` (retryable for connection trouble, conflicts
            and timeouts, not for bad SQL or violated constraints), or ``OutcomeUnknown``
            when the connection broke during the commit.
    """
    given = call.input
    dsn = _libpq_dsn(given["dsn"])
    timeout = call.timeout(float(given.get("timeout_seconds", 30)))
    max_rows = int(given.get("max_rows", DEFAULT_MAX_ROWS))
    return dict(call.deduplicated(lambda: _execute(dsn, given, timeout, max_rows)))


def _execute(dsn: str, given: dict[str, Any], timeout: float, max_rows: int) -> dict[str, Any]:
    try:
        connection = psycopg.connect(dsn, connect_timeout=max(1, math.ceil(timeout)))
    except psycopg.Error as exc:
        raise _failure("cannot connect", exc, may_have_acted=False) from None
    except ValueError as exc:  # psycopg refuses a DSN it cannot parse
        raise ConnectorFailure(
            f"surefoot.postgres input is invalid: dsn: {exc}",
            type="ConnectorInputInvalid",
            retryable=False,
            may_have_acted=False,
        ) from None
    try:
        try:
            # Pipeline mode sends the statement with the extended protocol, which takes one
            # statement only. Without it, a statement without parameters goes as a simple
            # query, where `...; COMMIT; ...` would commit part of the step before a later
            # failure that is then reported, and deduplicated, as rolled back.
            with connection.pipeline():
                # Local to this transaction, so a pooled server connection is left as found.
                connection.execute(
                    "SELECT set_config('statement_timeout', %s, true)", (f"{int(timeout * 1000)}",)
                )
                cursor = connection.execute(given["sql"], given.get("params"))
            columns = [column.name for column in cursor.description or ()]
            fetched = cursor.fetchmany(max_rows + 1) if columns else []
            rowcount = cursor.rowcount
        except psycopg.Error as exc:
            # Not committed: the server rolls the transaction back, whatever broke.
            raise _failure("the statement failed", exc, may_have_acted=False) from None
        except TypeError as exc:
            # psycopg's word for `params` of the wrong shape (a list for %(name)s, an
            # object for %s): an input to fix, found before anything ran.
            raise ConnectorFailure(
                f"surefoot.postgres input is invalid: params: {exc}",
                type="ConnectorInputInvalid",
                retryable=False,
                may_have_acted=False,
            ) from None
        try:
            connection.commit()
        except psycopg.Error as exc:
            # An error the server answered (a deferred constraint, a serialization failure)
            # means rolled back; a connection lost during COMMIT leaves it unknown.
            raise _failure("the commit failed", exc, may_have_acted=not exc.sqlstate) from None
    finally:
        connection.close()
    rows = [dict(zip(columns, (json_safe(v) for v in row), strict=True)) for row in fetched]
    return {
        "rows": rows[:max_rows],
        "rowcount": rowcount,
        "truncated": len(rows) > max_rows,
    }


def _failure(what: str, exc: psycopg.Error, *, may_have_acted: bool) -> ConnectorFailure:
    state = exc.sqlstate or ""
    if state:
        retryable = state[:2] in _RETRYABLE_CLASSES or state in _RETRYABLE_STATES
    else:
        # No SQLSTATE: the client gave up (a lost connection: worth another try) or refused
        # the statement itself (a parameter that does not fit: it never will).
        retryable = isinstance(exc, psycopg.OperationalError)
    primary = exc.diag.message_primary if state else None
    detail = " ".join((primary or str(exc)).split())
    suffix = f" (SQLSTATE {state})" if state else ""
    return ConnectorFailure(
        f"PostgreSQL: {what}: {detail}{suffix}",
        type=f"Postgres{type(exc).__name__}",
        retryable=retryable,
        may_have_acted=may_have_acted,
    )


def _libpq_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs too (``postgresql+psycopg://``): Surefoot's own style."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://"):
        if dsn.startswith(prefix):
            return "postgresql://" + dsn.removeprefix(prefix)
    return dsn


def json_safe(value: Any) -> Any:
    """A database value as JSON: what JSON cannot hold exactly becomes text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b16encode(bytes(value)).decode("ascii").lower()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    return str(value)


CONNECTOR = Connector(
    name="surefoot.postgres",
    version="1",
    summary="Run one parameterised SQL statement in a PostgreSQL transaction, once",
    input_schema=INPUT_SCHEMA,
    idempotency="key",
    retry=RetryPolicy(
        max_attempts=5,
        initial_interval=1.0,
        backoff_coefficient=2.0,
        max_interval=60.0,
        jitter=0.2,
    ),
    handler=run_statement,
)
