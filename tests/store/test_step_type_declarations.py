"""Workers declaring the same new step type at the same moment (replicas of one deployment)
all register it: none of their streams fails on the race."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from surefoot.v1 import common_pb2

from controlplane.store.database import open_engine
from controlplane.store.migrate import upgrade_engine
from controlplane.store.schema import step_types
from controlplane.store.step_types import upsert_step_types
from tests.support.databases import fresh_database

WORKERS = 8


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with fresh_database("postgres", tmp_path) as url:
        opened = open_engine(url, pool_size=WORKERS)
        try:
            upgrade_engine(opened)
            yield opened
        finally:
            opened.dispose()


@pytest.mark.postgres
def test_concurrent_declarations_of_a_new_step_type_all_succeed(engine: Engine) -> None:
    declaration = common_pb2.StepTypeDeclaration(
        name="charge", version="1", idempotency=common_pb2.IDEMPOTENCY_KEY
    )
    start = threading.Barrier(WORKERS)
    failures: list[BaseException] = []

    def declare() -> None:
        try:
            with engine.begin() as connection:
                start.wait()
                upsert_step_types(connection, "default", [declaration])
        except BaseException as exc:  # the test reports every failure
            failures.append(exc)

    threads = [threading.Thread(target=declare) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(step_types)).scalar() == 1
