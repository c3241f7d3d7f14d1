"""Planner statistics for a new database's busiest tables, before autovacuum gets to them.

Until a table has been analyzed once, PostgreSQL's planner guesses its contents, and for
`runs` it guessed wrong: looking up a batch's request ids under their namespace, it read
every run of the namespace through the (namespace, status) index instead of the unique
(namespace, request_id) one, a lookup that grew with every run started (20 ms per batch at
30,000 runs, in a new deployment's first minute). Autovacuum analyzes a table only after its
naptime (a minute) and a share of changed rows, so a fresh database under load runs on
guesses meanwhile. This thread analyzes each of those tables once, as soon as it holds enough
rows to be worth it; from then on autovacuum keeps the statistics current.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, text

from controlplane.store.reachability import is_unreachable, reason

log = logging.getLogger("surefoot.statistics")

TABLES = ("runs", "history", "tasks")
# Rows a table needs before its first ANALYZE is worth it (below, any plan is cheap).
MIN_ROWS = 1000
CHECK_SECONDS = 5.0

_NEVER_ANALYZED = text(
    "SELECT relname FROM pg_stat_user_tables"
    " WHERE relname = ANY(CAST(:tables AS text[]))"
    " AND last_analyze IS NULL AND last_autoanalyze IS NULL"
    " AND n_live_tup + n_mod_since_analyze >= :min_rows"
)


class FirstAnalyze:
    """Analyzes each of TABLES once, when it first holds MIN_ROWS rows (PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pending = set(TABLES)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="surefoot-statistics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while self._pending and not self._stopping.wait(CHECK_SECONDS):
            try:
                self.check()
            except Exception as exc:  # the statistics are an optimisation: never fatal
                if not is_unreachable(exc):
                    log.warning("could not analyze %s: %s", sorted(self._pending), reason(exc))

    def check(self) -> list[str]:
        """Analyze the pending tables that now hold enough rows; the ones analyzed."""
        with self._engine.connect() as connection:
            due = connection.execute(
                _NEVER_ANALYZED, {"tables": sorted(self._pending), "min_rows": MIN_ROWS}
            ).scalars()
            analyzed = sorted(set(due) & self._pending)
            for table in analyzed:
                connection.execute(text(f"ANALYZE {table}"))  # a name from TABLES only
                connection.commit()
                self._pending.discard(table)
                log.info("analyzed %s for the planner (its first statistics)", table)
        # Analyzed meanwhile by autovacuum or an operator: nothing left to do for those.
        return analyzed
