"""How PostgreSQL stores a run's row: rewritten at every step, it stays inline uncompressed."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, text

from tests.store.stored_runs import orders_definition, register, save_new_run


@pytest.fixture(params=[pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)])
def database_kind(request: pytest.FixtureRequest) -> str:
    """PostgreSQL only: TOAST is its own (SQLite keeps rows as they are)."""
    return str(request.param)


def test_a_run_state_past_two_kilobytes_is_not_compressed_on_update(engine: Engine) -> None:
    definition = register(engine, orders_definition())
    save_new_run(engine, definition, "run-big")
    # Past the default TOAST threshold (about 2 KB), and very compressible.
    state = json.dumps({"steps": {}, "padding": "x" * 3000})
    with engine.begin() as connection:
        connection.execute(text("UPDATE runs SET state = :s WHERE id = 'run-big'"), {"s": state})
    with engine.connect() as connection:
        stored, length = connection.execute(
            text("SELECT pg_column_size(state), octet_length(state) FROM runs WHERE id = 'run-big'")
        ).one()
    assert stored >= length, f"state stored in {stored} bytes for {length}: compressed"
