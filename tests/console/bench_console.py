"""Console benchmark (a script, not a test): 100,000 runs and 4,000 dead letters on PostgreSQL.

    uv run python -m tests.console.bench_console [--runs 100000] [--dead-letters 4000]
                                                 [--no-vacuum]

Measures what an operator waits for, with the console headless in this process against a
real control plane: the first paint of Runs (rows shown), a `/status:needs_attention`
filter, the dead-letter groups (`:dlq`); then, for the installed `surefoot console` running
in a terminal (tmux), its memory (RSS) and its CPU while idle on Runs for 10 s. Prints one
JSON object on the last line. Targets (issue 14): first paint < 1 s, filter < 300 ms,
groups < 500 ms, memory < 150 MB, idle CPU < 2%.

The runs are made fast: two real runs (one completed, one dead-lettered by a declined card)
give the rows every other run is a copy of, inserted in batches under new ids and times.
Then the tables are vacuumed and analyzed, as autovacuum does soon after so many inserts on
a production server (the test server runs without autovacuum): until a table is vacuumed,
an index-only scan reads every heap row too, so the counts by status would read all 100,000
runs. `--no-vacuum` measures that state instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, select, text
from textual.widgets import DataTable

from console.app import SurefootConsole
from console.client import ControlPlane as ConsoleControlPlane
from console.paged_table import PagedTable
from controlplane.store import schema
from tests.support.databases import fresh_database
from tests.support.eventually import assert_eventually, assert_eventually_async
from tests.support.processes import (
    STEPS_MODULE,
    ControlPlane,
    ProcessRegistry,
    process_environment,
    start_worker,
)
from tests.support.runs import register, start_run, wait_for_status
from tests.support.workflows import three_steps

BATCH = 5_000
IDLE_SECONDS = 10.0


def seed(database_url: str, runs: int, dead_letters: int, templates: dict[str, str]) -> None:
    """`runs` copies of the template runs, `dead_letters` of them NEEDS_ATTENTION."""
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        rows = {
            kind: dict(
                connection.execute(select(schema.runs).where(schema.runs.c.id == run_id))
                .mappings()
                .one()
            )
            for kind, run_id in templates.items()
        }
        letter = dict(
            connection.execute(
                select(schema.dead_letters).where(schema.dead_letters.c.run_id == templates["dead"])
            )
            .mappings()
            .one()
        )
    made = 0
    while made < runs:
        batch_runs: list[dict[str, Any]] = []
        batch_letters: list[dict[str, Any]] = []
        for index in range(made, min(runs, made + BATCH)):
            dead = index < dead_letters
            row = dict(rows["dead" if dead else "done"])
            row["id"] = str(uuid.uuid4())
            row["request_id"] = None
            when = now - timedelta(seconds=(runs - index) * 6)
            row["created_at"] = row["updated_at"] = when
            if not dead:
                row["closed_at"] = when
            batch_runs.append(row)
            if dead:
                copy = dict(letter)
                copy["run_id"] = row["id"]
                copy["dead_lettered_at"] = when
                batch_letters.append(copy)
        with engine.begin() as connection:
            connection.execute(insert(schema.runs), batch_runs)
            if batch_letters:
                connection.execute(insert(schema.dead_letters), batch_letters)
        made += len(batch_runs)
        print(f"seeded {made} runs", file=sys.stderr)
    engine.dispose()


def vacuum(database_url: str) -> None:
    """What autovacuum would do after the seeding: the visibility map and the statistics."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for table in ("runs", "dead_letters"):
            connection.execute(text(f"VACUUM (ANALYZE) {table}"))
    engine.dispose()


async def until(pilot: Any, condition: Callable[[], Any], message: str) -> float:
    """Seconds until `condition` holds, checking between the app's own steps."""
    started = time.perf_counter()
    await assert_eventually_async(
        condition, 30.0, interval=0.005, message=message, pause=pilot.pause
    )
    return time.perf_counter() - started


def first_table(app: SurefootConsole) -> DataTable[Any] | None:
    tables = list(app.screen.query(DataTable))
    return tables[0] if tables else None


async def measure_headless(address: str) -> dict[str, float]:
    app = SurefootConsole(ConsoleControlPlane(address, "default"))
    figures: dict[str, float] = {}
    started = time.perf_counter()
    async with app.run_test(size=(160, 48)) as pilot:

        def painted() -> bool:
            table = first_table(app)
            return table is not None and table.row_count > 0

        await until(pilot, painted, "runs painted")
        figures["runs_first_paint_s"] = time.perf_counter() - started

        await pilot.press("slash", *"status:needs_attention")
        before = time.perf_counter()
        await pilot.press("enter")

        def filtered() -> bool:
            table = first_table(app)
            if table is None or table.row_count == 0:
                return False
            cells = [" ".join(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
            return all("NEEDS_ATTENTION" in line for line in cells)

        await until(pilot, filtered, "runs filtered")
        figures["runs_filter_s"] = time.perf_counter() - before

        await pilot.press("colon", *"dlq")
        before = time.perf_counter()
        await pilot.press("enter")

        def grouped() -> bool:
            tables = list(app.screen.query("#groups").results(PagedTable))
            return bool(tables and tables[0].keys)

        await until(pilot, grouped, "dead-letter groups")
        figures["dead_letter_groups_s"] = time.perf_counter() - before
    return figures


def measure_terminal(address: str, scratch: Path) -> dict[str, float]:
    """RSS and idle CPU of the installed console in a real terminal, on Runs."""
    tmux = shutil.which("tmux")
    if tmux is None:
        return {}
    socket = f"surefoot-bench-{uuid.uuid4().hex[:8]}"
    surefoot = Path(sys.executable).with_name("surefoot")
    env = [f"XDG_CONFIG_HOME={scratch}", "TERM=xterm-256color"]
    command = [str(surefoot), "console", "--address", address]
    base = [tmux, "-L", socket]
    subprocess.run(
        [*base, "new-session", "-d", "-s", "b", "-x", "160", "-y", "48", "env", *env, *command],
        check=True,
    )
    try:
        assert_eventually(
            lambda: (
                "connected"
                in subprocess.run(
                    [*base, "capture-pane", "-p", "-t", "b"], capture_output=True, text=True
                ).stdout
            ),
            30.0,
            message="the console connected",
        )
        pid = int(
            subprocess.run(
                [*base, "display", "-p", "-t", "b", "#{pane_pid}"], capture_output=True, text=True
            ).stdout.strip()
        )
        # Settle: the first page is painted, the live stream is open.
        time.sleep(3.0)
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_before = _cpu_ticks(pid)
        time.sleep(IDLE_SECONDS)
        cpu = (_cpu_ticks(pid) - cpu_before) / ticks / IDLE_SECONDS
        return {"console_rss_mb": _rss_mb(pid), "console_idle_cpu_percent": 100 * cpu}
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--dead-letters", type=int, default=4_000)
    parser.add_argument(
        "--no-vacuum", action="store_true", help="measure the tables as inserted, not vacuumed"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        with fresh_database("postgres", scratch) as url:
            registry = ProcessRegistry(scratch / "processes", process_environment())
            try:
                server = ControlPlane(registry, url)
                server.start()
                register(server.stub, three_steps("bench-checkout"))
                start_worker(registry, server.address, STEPS_MODULE)
                done = start_run(server.stub, "bench-checkout", {"trail": []})
                dead = start_run(
                    server.stub, "bench-checkout", {"trail": [], "b": {"non_retryable": True}}
                )
                wait_for_status(server.stub, done, "COMPLETED")
                wait_for_status(server.stub, dead, "NEEDS_ATTENTION")
                registry.processes[-1].kill()  # the worker: the console is measured alone
                seed(url, args.runs, args.dead_letters, {"done": done, "dead": dead})
                if not args.no_vacuum:
                    vacuum(url)
                figures: dict[str, Any] = {"runs": args.runs, "dead_letters": args.dead_letters}
                figures["vacuumed"] = not args.no_vacuum
                figures |= asyncio.run(measure_headless(server.address))
                figures |= measure_terminal(server.address, scratch)
                server.stop()
            finally:
                registry.kill_all()
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
