"""The CLI sends a request id with every write and, when no answer came in time, prints it:
the operator runs the command again with --request-id and gets the first outcome."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import text

from controlplane.store.database import open_engine
from tests.request_ids.request_support import held
from tests.support.approval_auth import OPERATOR, AuthControlPlane
from tests.support.eventually import assert_eventually
from tests.support.processes import run_cli
from tests.support.runs import register

pytestmark = pytest.mark.postgres


def deprecated(database_url: str, name: str) -> bool:
    engine = open_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            query = text("select deprecated from definitions where name = :name")
            return bool(connection.execute(query, {"name": name}).scalar_one())
    finally:
        engine.dispose()


def test_a_deprecate_that_timed_out_is_repeated_by_its_printed_id_and_acts_once(
    server: AuthControlPlane,
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    register(server.stub, held(name))
    args: tuple[str, ...] = ("definitions", "deprecate", f"{name}@1", "--reason", "superseded")
    args += ("--address", server.address)
    engine = open_engine(server.database_url, pool_size=1)
    try:
        with engine.connect() as blocker:
            query = "select id from definitions where name = :name for update"
            blocker.execute(text(query), {"name": name})
            slow = run_cli(*args, "--timeout", "1", SUREFOOT_TOKEN=OPERATOR)
            blocker.rollback()
    finally:
        engine.dispose()
    assert slow.returncode == 3, slow.stderr
    found = re.search(r"--request-id (\S+) to get its outcome", slow.stderr)
    assert found, slow.stderr
    assert_eventually(lambda: deprecated(server.database_url, name), message="it went through")

    again = run_cli(*args, "--request-id", found.group(1), SUREFOOT_TOKEN=OPERATOR)
    assert again.returncode == 0, again.stderr
    # The first call's outcome (it deprecated the version), not a second call's.
    assert again.stdout.startswith(f"deprecated {name}@1"), again.stdout
    plain = run_cli(*args, SUREFOOT_TOKEN=OPERATOR)
    assert "was already deprecated" in plain.stdout
