"""`surefoot runs list` with --since/--until/--id-prefix and "N of TOTAL", and `runs list
--watch` following the list live (table or JSON lines) until Ctrl-C: the CLI as a user runs
it against a real control plane process."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.watch_support import GATES, start_gated_run
from tests.support.eventually import assert_eventually
from tests.support.processes import (
    ControlPlane,
    ManagedProcess,
    ProcessRegistry,
    run_cli,
    surefoot_command,
)
from tests.support.runs import wait_for_status

EXIT_TIMEOUT = 60.0


@pytest.fixture
def plane(database_url: str, processes: ProcessRegistry) -> Iterator[ControlPlane]:
    server = ControlPlane(processes, database_url)
    server.start()
    yield server
    server.stop()


def cli(plane: ControlPlane, *args: str) -> tuple[int, str, str]:
    done = run_cli(*args, "--address", plane.address)
    return done.returncode, done.stdout, done.stderr


def start_cli(processes: ProcessRegistry, plane: ControlPlane, *args: str) -> ManagedProcess:
    return processes.start("cli", surefoot_command(*args, "--address", plane.address))


def listed_ids(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "WORKFLOW", "STATUS"], lines
    return [line.split()[0] for line in lines[1:]]


def json_lines(process: ManagedProcess) -> list[dict[str, Any]]:
    """The complete lines printed so far (the last one may be half written)."""
    complete = process.stdout().rpartition("\n")[0]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def test_runs_list_filters_by_age_time_and_prefix_and_says_n_of_total(
    plane: ControlPlane,
) -> None:
    runs = [start_gated_run(plane.stub) for _ in range(3)]
    newest_first = [run.run_id for run in reversed(runs)]

    code, out, err = cli(
        plane, "runs", "list", "--workflow", GATES, "--since", "1h", "--limit", "2"
    )
    assert code == 0, err
    assert listed_ids(out) == newest_first[:2]
    assert err.splitlines()[0] == "2 of 3 runs" and err.splitlines()[1].startswith("next page:")

    target = runs[1].run_id
    code, out, err = cli(plane, "runs", "list", "--id-prefix", target[:8])
    assert code == 0, err
    assert listed_ids(out) == [target] and err == "1 of 1 runs\n"

    code, out, err = cli(plane, "runs", "list", "--until", "2000-01-01T00:00:00Z")
    assert (code, out, err) == (0, "no runs\n", "")

    code, out, err = cli(plane, "runs", "list", "--workflow", GATES, "--since", "1h", "-o", "json")
    assert code == 0, err
    document = json.loads(out)
    assert int(document["total"]) == 3 and len(document["runs"]) == 3


def test_bad_list_filters_are_usage_errors_or_refusals_naming_the_field(
    plane: ControlPlane,
) -> None:
    code, out, err = cli(plane, "runs", "list", "--since", "yesterday")
    assert code == 2 and out == "" and "--since" in err and "an age" in err

    code, out, err = cli(plane, "runs", "list", "--id-prefix", "abc")
    assert code == 1 and out == "", err
    assert "INVALID_ARGUMENT" in err and "run_id_prefix" in err

    code, out, err = cli(plane, "runs", "list", "--since", "1h", "--until", "2h")
    assert code == 1 and "created_before" in err, err

    code, out, err = cli(plane, "runs", "list", "--watch", "--page-token", "x")
    assert code == 2 and "--page-token" in err, err


def test_runs_list_watch_prints_the_list_then_each_change_as_json_lines(
    plane: ControlPlane, processes: ProcessRegistry
) -> None:
    earlier = start_gated_run(plane.stub)
    watcher = start_cli(
        processes, plane, "runs", "list", "--watch", "--workflow", GATES, "-o", "json"
    )
    first = assert_eventually(lambda: json_lines(watcher), message="the first line")[0]
    assert first["initial"] is True and int(first["total"]) == 1
    assert [c["run"]["id"] for c in first["changes"]] == [earlier.run_id]

    later = start_gated_run(plane.stub)
    later.release(plane.stub, "first")
    later.release(plane.stub, "second")
    wait_for_status(plane.stub, later.run_id, "COMPLETED")

    def completed() -> dict[str, Any] | None:
        for line in json_lines(watcher)[1:]:
            for change in line["changes"]:
                if change["run"]["status"] == "RUN_STATUS_COMPLETED":
                    return line
        return None

    line = assert_eventually(completed, message="the run's completion as a JSON line")
    watcher.send_signal(signal.SIGINT)
    assert watcher.popen.wait(timeout=EXIT_TIMEOUT) == 130, watcher.logs()
    assert line["initial"] is False and int(line["total"]) == 2
    assert {c["run"]["id"] for c in line["changes"]} == {later.run_id}


def test_runs_list_watch_prints_the_table_then_a_line_per_change_and_left(
    plane: ControlPlane, processes: ProcessRegistry
) -> None:
    leaving = start_gated_run(plane.stub)
    watcher = start_cli(
        processes, plane, "runs", "list", "-w", "--workflow", GATES, "--status", "waiting"
    )
    watcher.wait_for_stdout(re.compile(re.escape(leaving.run_id)))
    assert_eventually(lambda: "1 of 1 runs" in watcher.stderr(), message="the count line")

    leaving.release(plane.stub, "first")
    watcher.wait_for_stdout(re.compile(rf"updated\s+{leaving.run_id}\s+\S+\s+WAITING\s+second"))
    leaving.release(plane.stub, "second")
    watcher.wait_for_stdout(re.compile(rf"left\s+{leaving.run_id}\s+\S+\s+COMPLETED"))
    watcher.send_signal(signal.SIGINT)

    assert watcher.popen.wait(timeout=EXIT_TIMEOUT) == 130, watcher.logs()
    lines = watcher.stdout().splitlines()
    assert lines[0].split()[:3] == ["ID", "WORKFLOW", "STATUS"]
    assert lines[2].split()[:3] == ["CHANGE", "ID", "WORKFLOW"]
    assert watcher.stderr().splitlines()[-2:] == [
        "matching runs: 0",
        "stopped watching (nothing was changed)",
    ]
