"""`surefoot runs watch`, `runs start --wait` and `runs result` end to end: the CLI as a user
runs it, a real control plane process, real workers; the exit code says how the run ended."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator

import pytest

from tests.api.watch_support import history, start_gated_run, type_name
from tests.support.eventually import assert_eventually
from tests.support.processes import (
    ControlPlane,
    ManagedProcess,
    ProcessRegistry,
    run_cli,
    start_worker,
    surefoot_command,
)
from tests.support.runs import register, start_run, wait_for_status
from tests.support.workflows import three_steps

EXIT_TIMEOUT = 120.0


@pytest.fixture
def plane(database_url: str, processes: ProcessRegistry) -> Iterator[ControlPlane]:
    """`surefoot server` on the test's database (SQLite and PostgreSQL)."""
    server = ControlPlane(processes, database_url)
    server.start()
    yield server
    server.stop()


def cli(plane: ControlPlane, *args: str) -> tuple[int, str, str]:
    done = run_cli(*args, "--address", plane.address)
    return done.returncode, done.stdout, done.stderr


def start_cli(processes: ProcessRegistry, plane: ControlPlane, *args: str) -> ManagedProcess:
    """A CLI command that runs until the run ends, in the background."""
    return processes.start("cli", surefoot_command(*args, "--address", plane.address))


def exit_code(process: ManagedProcess) -> int:
    return process.popen.wait(timeout=EXIT_TIMEOUT)


def printed_seqs(stdout: str) -> list[int]:
    """The seq column of `runs watch`'s event lines (the first line is the header)."""
    lines = stdout.splitlines()
    assert lines[0].split()[:3] == ["SEQ", "TIME", "TYPE"], lines[:1]
    return [int(line.split()[0]) for line in lines[1:]]


def test_runs_watch_prints_each_event_once_as_it_comes_and_exits_0_on_completion(
    plane: ControlPlane, processes: ProcessRegistry
) -> None:
    register(plane.stub, three_steps("cli-watch"))
    run_id = start_run(plane.stub, "cli-watch", {"trail": []})
    watcher = start_cli(processes, plane, "runs", "watch", run_id)
    watcher.wait_for_stdout(re.compile(r"RUN_STARTED"))  # before any step ran
    worker = start_worker(processes, plane.address)

    assert exit_code(watcher) == 0, watcher.logs()
    worker.kill()
    events = history(plane.stub, run_id)
    assert printed_seqs(watcher.stdout()) == [e.seq for e in events]
    types = [line.split()[2] for line in watcher.stdout().splitlines()[1:]]
    assert types == [type_name(e) for e in events] and types[-1] == "RUN_COMPLETED"
    assert watcher.stderr().strip() == f"run {run_id} ended COMPLETED"

    # The same run once it ended: its tail as JSON lines, then the result.
    code, out, err = cli(plane, "runs", "watch", run_id, "--after-seq", "2", "--json")
    assert code == 0, err
    messages = [json.loads(line) for line in out.splitlines()]
    assert [int(e["seq"]) for m in messages for e in m["events"]] == [e.seq for e in events][2:]
    assert messages[-1]["status"] == "RUN_STATUS_COMPLETED"
    code, out, err = cli(plane, "runs", "result", run_id)
    assert (code, json.loads(out)) == (0, {"trail": ["a", "b", "c"], "attempt": 1}), err
    code, out, err = cli(plane, "runs", "result", run_id, "--json")
    assert code == 0 and json.loads(out)["run"]["status"] == "RUN_STATUS_COMPLETED", err


@pytest.mark.postgres
def test_runs_start_wait_prints_the_output_of_the_run(
    postgres_plane: ControlPlane, processes: ProcessRegistry
) -> None:
    register(postgres_plane.stub, three_steps("cli-wait"))
    worker = start_worker(processes, postgres_plane.address)
    code, out, err = cli(
        postgres_plane, "runs", "start", "cli-wait", "--input", '{"trail": ["x"]}', "--wait"
    )
    worker.kill()
    assert code == 0, err
    assert json.loads(out) == {"trail": ["x", "a", "b", "c"], "attempt": 1}
    started = re.search(r"started run (\S+); waiting", err)
    assert started is not None, err
    assert str(wait_for_status(postgres_plane.stub, started.group(1), "COMPLETED").id) == (
        started.group(1)
    )


@pytest.mark.postgres
def test_a_cancelled_run_ends_the_wait_with_exit_1_and_result_tells_going_on_from_ended(
    postgres_plane: ControlPlane, processes: ProcessRegistry
) -> None:
    stub = postgres_plane.stub
    start_gated_run(stub)  # registers the workflow
    waiter = start_cli(
        processes,
        postgres_plane,
        "runs",
        "start",
        "watch-two-gates",
        "--input",
        '{"key": "cli-cancel"}',
        "--wait",
    )
    started = assert_eventually(
        lambda: re.search(r"started run (\S+); waiting", waiter.stderr()),
        message="the CLI started the run",
    )
    run_id = started.group(1)

    code, out, err = cli(postgres_plane, "runs", "result", run_id)
    assert (code, out) == (4, ""), err
    assert err.strip() == f"run {run_id} has not ended: it is WAITING"

    code, _, err = cli(postgres_plane, "runs", "cancel", run_id, "--reason", "not needed")
    assert code == 0, err
    assert exit_code(waiter) == 1, waiter.logs()
    assert waiter.stdout() == ""
    assert waiter.stderr().splitlines()[-1] == f"run {run_id} ended CANCELLED"
    code, out, err = cli(postgres_plane, "runs", "result", run_id)
    assert (code, out, err.strip()) == (1, "", f"run {run_id} ended CANCELLED")


@pytest.mark.postgres
def test_ctrl_c_stops_following_in_one_line_and_the_run_goes_on(
    postgres_plane: ControlPlane, processes: ProcessRegistry
) -> None:
    run = start_gated_run(postgres_plane.stub)
    watcher = start_cli(processes, postgres_plane, "runs", "watch", run.run_id)
    watcher.wait_for_stdout(re.compile(r"EVENT_WAIT_STARTED"))
    watcher.send_signal(signal.SIGINT)
    assert exit_code(watcher) == 130, watcher.logs()
    last = printed_seqs(watcher.stdout())[-1]
    assert watcher.stderr().splitlines() == [
        f"stopped following run {run.run_id} (the run goes on; "
        f"surefoot runs watch {run.run_id} --after-seq {last} resumes)"
    ]
    wait_for_status(postgres_plane.stub, run.run_id, "WAITING")


@pytest.mark.postgres
def test_a_watch_goes_on_across_a_control_plane_restart_without_losing_or_repeating(
    postgres_plane: ControlPlane, processes: ProcessRegistry
) -> None:
    run = start_gated_run(postgres_plane.stub)
    watcher = start_cli(processes, postgres_plane, "runs", "watch", run.run_id)
    watcher.wait_for_stdout(re.compile(r"EVENT_WAIT_STARTED"))

    postgres_plane.restart()  # SIGKILL, then a new process on the same port
    run.release(postgres_plane.stub, "first")
    run.release(postgres_plane.stub, "second")

    assert exit_code(watcher) == 0, watcher.logs()
    events = history(postgres_plane.stub, run.run_id)
    assert printed_seqs(watcher.stdout()) == [e.seq for e in events]
    assert "lost the stream" in watcher.stderr()


def test_bad_watches_are_refused_with_the_cli_exit_codes(
    plane: ControlPlane, unused_address: str
) -> None:
    code, out, err = cli(plane, "runs", "watch", "no-such-run")
    assert (code, out) == (1, "")
    assert err.strip() == "error: NOT_FOUND: run no-such-run not found in namespace 'default'"
    code, _, err = cli(plane, "runs", "watch", "no-such-run", "--after-seq", "-1")
    assert code == 2 and "must not be negative" in err
    code, _, err = cli(plane, "runs", "result", "no-such-run")
    assert code == 1 and "NOT_FOUND" in err
    done = run_cli("runs", "watch", "some-run", "--address", unused_address)
    assert done.returncode == 3 and "cannot reach" in done.stderr
