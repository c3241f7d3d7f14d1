"""Acceptance: `surefoot worker` (the Python SDK) on a server with credentials.

It presents its token (SUREFOOT_TOKEN or --token), over TLS when given a CA bundle; without
a token it is refused in one line; and across a graceful restart of the control plane the
step it was running is neither lost nor run twice: its next stream names the one it was
welcomed on, so the lease follows it and its result is accepted.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ProcessRegistry, run_cli, start_worker
from tests.support.runs import (
    events_of,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)
from tests.support.tls import make_tls_files
from tests.support.workflows import QUICK_RETRY, single_step, three_steps
from tests.worker_trust.trust_plane import WORKER, TrustPlane, write_auth_file

STEPS_MODULE = Path(__file__).parents[1] / "support" / "steps.py"


def test_a_worker_with_a_token_runs_steps_and_one_without_is_refused(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> None:
    server = TrustPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    register(server.stub, three_steps("with-token"))

    refused = run_cli("worker", str(STEPS_MODULE), "--address", server.address, timeout=60)
    assert refused.returncode == 1, refused
    (line,) = refused.stderr.strip().splitlines()[-1:]
    assert "refused worker" in line and "credential" in line, refused.stderr

    processes.env["SUREFOOT_TOKEN"] = WORKER
    worker = start_worker(processes, server.address)
    run_id = start_run(server.stub, "with-token", {"trail": []})
    run = wait_for_status(server.stub, run_id, "COMPLETED")
    assert payload_value(run.output)["trail"] == ["a", "b", "c"]
    credited = {e.principal for e in events_of(history(server.stub, run_id), "ATTEMPT_COMPLETED")}
    assert credited == {worker.worker_id}
    worker.kill()
    server.stop()


def test_a_worker_connects_over_tls_with_its_token(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> None:
    files = make_tls_files(tmp_path / "tls")
    tls = ["--tls-cert", str(files.server.cert), "--tls-key", str(files.server.key)]
    auth_file = write_auth_file(tmp_path / "auth.yaml")
    server = TrustPlane(processes, database_url, auth_file, tls, tls_ca=str(files.ca.cert))
    server.start()
    register(server.stub, three_steps("over-tls"))
    processes.env.update({"SUREFOOT_TLS_CA": str(files.ca.cert), "SUREFOOT_TOKEN": WORKER})
    worker = start_worker(processes, server.address)

    run_id = start_run(server.stub, "over-tls", {"trail": []})
    run = wait_for_status(server.stub, run_id, "COMPLETED")
    assert payload_value(run.output)["trail"] == ["a", "b", "c"]
    credited = {e.principal for e in events_of(history(server.stub, run_id), "ATTEMPT_COMPLETED")}
    assert credited == {worker.worker_id}
    worker.kill()
    server.stop()


def test_a_step_running_across_a_graceful_restart_is_reported_once(
    database_url: str, processes: ProcessRegistry, tmp_path: Path, execution_log: ExecutionLog
) -> None:
    # Leases long enough to outlive the restart: only the binding decides who may report.
    server = TrustPlane(
        processes, database_url, write_auth_file(tmp_path / "auth.yaml"), lease_seconds=30
    )
    server.start()
    register(server.stub, single_step("across-restart", QUICK_RETRY))
    processes.env["SUREFOOT_TOKEN"] = WORKER
    worker = start_worker(processes, server.address)
    # Longer than the server's 5 s drain grace: the step outlives the stream it came on.
    run_id = start_run(server.stub, "across-restart", {"trail": [], "sleep_seconds": 7})
    assert_eventually(
        lambda: len(execution_log.started(run_id, "step")) == 1, message="the step began"
    )
    assert server.stop() == 0
    server.start(server.port)

    run = wait_for_status(server.stub, run_id, "COMPLETED", timeout=90)
    assert payload_value(run.output)["trail"] == ["step", "after"]
    events = history(server.stub, run_id)
    assert len(execution_log.started(run_id, "step")) == 1
    assert not events_of(events, "ATTEMPT_LOST")
    assert [e.principal for e in events_of(events, "ATTEMPT_COMPLETED", "step")] == [
        worker.worker_id
    ]
    # The restarted server gave the lease to the worker's new stream, which reported it.
    assert server.process is not None
    assert "1 lease(s) taken over from earlier streams" in server.process.stderr()
    worker.kill()
    server.stop()
