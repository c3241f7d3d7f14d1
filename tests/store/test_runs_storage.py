"""How PostgreSQL stores a run's row: rewritten at every step, it stays inline uncompressed."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, text

from tests.store.stored_runs import orders_definition, register, save_new_run


def test_a_run_state_past_two_kilobytes_is_not_compressed_on_update(
    engine: Engine, database_kind: str
) -> None:
    if database_kind != "postgresql":
        pytest.skip("TOAST is PostgreSQL's")
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
