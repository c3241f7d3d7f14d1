"""Many runs rows at once on PostgreSQL, for query plans and the ListRuns benchmark.

Rows only (no history, no tasks): what ListRuns and WatchRuns read. Statuses, workflows
and namespaces vary with different periods so that no filter correlates with another.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, text

from controlplane.store.codec import to_datetime
from tests.store.stored_runs import T0, orders_definition, register

NAMESPACE = "default"
OTHER_NAMESPACE = "elsewhere"
STATUSES = ("RUNNING", "WAITING", "COMPLETED", "FAILED", "NEEDS_ATTENTION")

_INSERT = text(
    """
    INSERT INTO runs (id, namespace, definition_id, workflow_name, workflow_version, status,
                      input, state, last_seq, last_hash, trace_id, created_at, updated_at)
    SELECT gen_random_uuid()::text,
           CASE WHEN i % 4 = 0 THEN :other ELSE :namespace END,
           :definition_id,
           CASE WHEN i % 3 = 0 THEN 'billing' ELSE 'orders' END,
           '1',
           (CAST(:statuses AS text[]))[1 + (i / 7) % 5],
           '{}', '{}', 2, '', md5(i::text),
           :newest - i * interval '1 second',
           :newest - i * interval '1 second'
    FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS i
    """
)


def seed_runs(engine: Engine, count: int, first: int = 0) -> datetime:
    """`count` runs, one a second back from T0 (`first` shifts them further back); ANALYZEd.

    Returns the creation time of the newest.
    """
    definition = register(engine, orders_definition())
    newest = to_datetime(T0)
    with engine.begin() as connection:
        connection.execute(
            _INSERT,
            {
                "other": OTHER_NAMESPACE,
                "namespace": NAMESPACE,
                "definition_id": definition.id,
                "statuses": list(STATUSES),
                "newest": newest,
                "first": first,
                "last": first + count - 1,
            },
        )
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE runs")
        )
    return newest
