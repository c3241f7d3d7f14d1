"""ListRuns on PostgreSQL reads indexes, not the table: the plans of its statements over
20,000 runs in two namespaces.

A page is the index (namespace, created_at, id) read backwards from the token, with no sort;
a page of a few statuses that match few runs is those runs read by (namespace, status) and
sorted; a run id prefix is a range of the primary key; the counts by status are the index
(namespace, status) alone; the changes a live table re-reads come from (namespace,
updated_at, id). A plan that scans the table or sorts it grows with every run ever started,
which is what these tests refuse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Select

from controlplane.store import run_queries
from controlplane.store.database import open_engine
from controlplane.store.run_queries import RunSelection
from tests.live_runs.many_runs import NAMESPACE, STATUSES, seed_runs
from tests.support.databases import fresh_database

pytestmark = pytest.mark.postgres
RUNS = 20_000


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Any]]:
    with fresh_database("postgres", Path(tmp_path_factory.mktemp("plans"))) as url:
        engine = open_engine(url)
        try:
            newest = seed_runs(engine, RUNS)
            yield engine, newest
        finally:
            engine.dispose()


def plan(connection: Connection, query: Select[Any]) -> dict[str, Any]:
    compiled = query.compile(connection, compile_kwargs={"render_postcompile": True})
    row = connection.exec_driver_sql(
        "EXPLAIN (FORMAT JSON) " + compiled.string, compiled.construct_params()
    ).scalar_one()
    document = row if isinstance(row, list) else json.loads(row)
    return document[0]["Plan"]  # type: ignore[no-any-return]


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from nodes(child)


def scans(node: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (n["Node Type"], n.get("Index Name", "")) for n in nodes(node) if "Scan" in n["Node Type"]
    ]


def kinds(node: dict[str, Any]) -> set[str]:
    return {n["Node Type"] for n in nodes(node)}


def test_a_page_reads_the_namespace_s_creation_index_backwards_without_sorting(
    seeded: tuple[Engine, Any],
) -> None:
    engine, newest = seeded
    selections = [
        RunSelection(NAMESPACE),
        RunSelection(NAMESPACE, statuses=("RUNNING", "WAITING")),
        RunSelection(NAMESPACE, created_after=newest - timedelta(hours=2)),
        RunSelection(
            NAMESPACE,
            created_after=newest - timedelta(hours=3),
            created_before=newest - timedelta(hours=1),
        ),
    ]
    with engine.connect() as connection:
        first = connection.execute(run_queries.page_query(RunSelection(NAMESPACE), 100)).all()
        token = run_queries.encode_page_token(first[-1].created_at, first[-1].id)
        for selection in selections:
            for page_token in ("", token):
                found = plan(connection, run_queries.page_query(selection, 100, page_token))
                assert scans(found) == [("Index Scan", "ix_runs_namespace_created")], found
                assert found["Node Type"] == "Limit" and "Sort" not in kinds(found), found


def test_a_run_id_prefix_is_a_range_of_the_primary_key(seeded: tuple[Engine, Any]) -> None:
    engine, _ = seeded
    with engine.connect() as connection:
        some_id = connection.execute(run_queries.page_query(RunSelection(NAMESPACE), 1)).first()
        assert some_id is not None
        selection = RunSelection(NAMESPACE, id_prefix=some_id.id[:6])
        for query in (run_queries.page_query(selection, 100), run_queries.count_query(selection)):
            found = plan(connection, query)
            assert {name for _, name in scans(found)} == {"runs_pkey"}, found
            assert "Seq Scan" not in kinds(found)
        rows, _ = run_queries.page_of_runs(connection, selection)
        assert some_id.id in {row.id for row in rows}
        assert all(row.id.startswith(some_id.id[:6]) for row in rows)


def test_counting_reads_an_index_only(seeded: tuple[Engine, Any]) -> None:
    engine, newest = seeded
    with engine.connect() as connection:
        for selection in (
            RunSelection(NAMESPACE),
            RunSelection(NAMESPACE, statuses=("WAITING",)),
            RunSelection(NAMESPACE, created_after=newest - timedelta(hours=1)),
        ):
            found = plan(connection, run_queries.count_query(selection))
            assert "Seq Scan" not in kinds(found), found
            assert any(kind == "Index Only Scan" for kind, _ in scans(found)), found


def test_what_changed_lately_is_read_from_the_updated_index(seeded: tuple[Engine, Any]) -> None:
    engine, newest = seeded
    with engine.connect() as connection:
        query = run_queries.changed_since_query(NAMESPACE, newest - timedelta(seconds=30))
        found = plan(connection, query)
    # An index scan, or a bitmap of it and a sort of the few rows it finds.
    assert {name for _, name in scans(found) if name} == {"ix_runs_namespace_updated"}, found
    assert "Seq Scan" not in kinds(found)


def test_the_counts_by_status_read_the_status_index_only(seeded: tuple[Engine, Any]) -> None:
    engine, _ = seeded
    with engine.connect() as connection:
        # A status filter does not narrow them: they are the counts of every status.
        selection = RunSelection(NAMESPACE, statuses=("WAITING",))
        found = plan(connection, run_queries.by_status_query(selection))
        counts = run_queries.counts_by_status(connection, selection)
        everything = run_queries.count_runs(connection, RunSelection(NAMESPACE))
    assert scans(found) == [("Index Only Scan", "ix_runs_namespace_status")], found
    assert set(counts) == set(STATUSES) and sum(counts.values()) == everything


def test_a_page_of_few_matching_runs_is_sorted_from_the_status_index(
    seeded: tuple[Engine, Any],
) -> None:
    """The same pages as the backward walk of the creation index, without walking past the
    runs of other statuses: the matches' keys from (namespace, status), the page's rows by
    their ids."""
    engine, _ = seeded
    selection = RunSelection(NAMESPACE, statuses=("NEEDS_ATTENTION", "FAILED"))
    with engine.connect() as connection:
        matching = run_queries.count_runs(connection, selection)
        assert 0 < matching <= run_queries.FEW_MATCHING
        token = ""
        for _ in range(3):
            query = run_queries.page_query(selection, 100, token, matching=matching)
            found = plan(connection, query)
            used = {name for _, name in scans(found) if name}
            assert used == {"ix_runs_namespace_status", "runs_pkey"}, found
            few, few_token = run_queries.page_of_runs(
                connection, selection, 100, token, matching=matching
            )
            walked, walked_token = run_queries.page_of_runs(connection, selection, 100, token)
            assert [row.id for row in few] == [row.id for row in walked]
            assert few_token == walked_token and few_token
            assert {row.status for row in few} <= set(selection.statuses)
            token = few_token
