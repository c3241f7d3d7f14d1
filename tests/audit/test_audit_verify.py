"""Acceptance: runs' histories are hash-chained; `surefoot audit verify` finds the intact ones
intact and names, in each altered run, the first event that was edited, inserted or deleted
directly in the database, and AuditService says the same to any client."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import delete, func, insert, select, update
from surefoot.v1 import audit_service_pb2 as apb
from surefoot.v1 import audit_service_pb2_grpc

from controlplane.audit.chain import event_hash
from controlplane.store.database import open_engine
from controlplane.store.schema import history, runs
from tests.support.processes import ControlPlane, StartWorker, run_cli
from tests.support.runs import register, start_run, wait_for_status
from tests.support.waits import refusal
from tests.support.workflows import three_steps


def audit_stub(control_plane: ControlPlane) -> audit_service_pb2_grpc.AuditServiceStub:
    return audit_service_pb2_grpc.AuditServiceStub(control_plane.channel)


def verify(control_plane: ControlPlane, *args: str) -> tuple[int, list[str]]:
    result = run_cli("audit", "verify", *args, "--address", control_plane.address)
    assert not result.stderr, result.stderr
    return result.returncode, result.stdout.splitlines()


def test_altered_histories_are_named_at_the_event_altered(
    control_plane: ControlPlane, worker: StartWorker, database_url: str
) -> None:
    register(control_plane.stub, three_steps("audited"))
    worker()
    run_ids = [start_run(control_plane.stub, "audited", {"trail": [i]}) for i in range(4)]
    for run_id in run_ids:
        wait_for_status(control_plane.stub, run_id, "COMPLETED")
    edited, inserted, deleted, intact = run_ids

    code, lines = verify(control_plane, *run_ids)
    assert code == 0, lines
    assert [line.split(":")[0] for line in lines] == [f"run {r}" for r in sorted(run_ids)]
    assert all(": intact (" in line for line in lines), lines

    engine = open_engine(database_url, pool_size=1)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(history)
                .where(history.c.run_id == edited, history.c.seq == 3)
                .values(data='{"forged": true}')
            )
            # One who knows the algorithm appends an event chained from the last one.
            last = connection.execute(
                select(history)
                .where(history.c.run_id == inserted)
                .order_by(history.c.seq.desc())
                .limit(1)
            ).one()
            row = {
                "run_id": inserted,
                "seq": last.seq + 1,
                "type": "ATTEMPT_COMPLETED",
                "time": last.time,
                "node_id": "c",
                "attempt": 1,
                "principal": "mallory",
                "data": '{"output": {"paid": 1000000}}',
            }
            forged = event_hash(
                last.hash,
                inserted,
                last.seq + 1,
                "ATTEMPT_COMPLETED",
                last.time,
                "c",
                1,
                "mallory",
                '{"output": {"paid": 1000000}}',
            )
            connection.execute(insert(history).values(**row, hash=forged))
            connection.execute(
                delete(history).where(history.c.run_id == deleted, history.c.seq == 4)
            )
            counted = select(history.c.run_id, func.count()).group_by(history.c.run_id)
            counts: dict[str, int] = {r: n for r, n in connection.execute(counted)}
            last_seqs: dict[str, int] = {
                r: n for r, n in connection.execute(select(runs.c.id, runs.c.last_seq))
            }
    finally:
        engine.dispose()
    assert counts[inserted] == last_seqs[inserted] + 1
    assert counts[deleted] == last_seqs[deleted] - 1

    code, lines = verify(control_plane, "--all")
    assert code == 1, lines
    assert lines[-1] == "4 runs verified: 3 altered"
    altered = {line.split(":")[0].removeprefix("run "): line for line in lines[:-1]}
    assert set(altered) == {edited, inserted, deleted}
    assert "history altered at seq 3 (edited): hash mismatch" in altered[edited]
    assert f"history altered at seq {last.seq + 1} (inserted)" in altered[inserted]
    assert "history altered at seq 4 (deleted): seq gap" in altered[deleted]

    code, lines = verify(control_plane, intact)
    assert code == 0 and lines == [lines[0]] and "intact" in lines[0]

    response = audit_stub(control_plane).VerifyRuns(
        apb.VerifyRunsRequest(run_ids=[edited, intact]), timeout=30
    )
    by_id = {v.run_id: v for v in response.runs}
    assert (by_id[edited].ok, by_id[edited].fault, by_id[edited].seq) == (
        False,
        apb.CHAIN_FAULT_EDITED,
        3,
    )
    assert by_id[intact].ok and by_id[intact].events == last_seqs[intact]
    assert len(by_id[intact].head_hash) == 64


def test_bad_verify_requests_are_refused(control_plane: ControlPlane) -> None:
    stub = audit_stub(control_plane)
    register(control_plane.stub, three_steps("elsewhere"))
    run_id = start_run(control_plane.stub, "elsewhere", {"trail": []})
    cases: list[tuple[apb.VerifyRunsRequest, grpc.StatusCode]] = [
        # A run of another namespace is not found there: no existence leak.
        (apb.VerifyRunsRequest(namespace="other", run_ids=[run_id]), grpc.StatusCode.NOT_FOUND),
        (
            apb.VerifyRunsRequest(namespace="Bad!", run_ids=[run_id]),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (apb.VerifyRunsRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (apb.VerifyRunsRequest(all=True, run_ids=["x"]), grpc.StatusCode.INVALID_ARGUMENT),
        (apb.VerifyRunsRequest(all=True, page_size=5000), grpc.StatusCode.INVALID_ARGUMENT),
        (apb.VerifyRunsRequest(all=True, page_token="%%%"), grpc.StatusCode.INVALID_ARGUMENT),
        (apb.VerifyRunsRequest(run_ids=["no-such-run"]), grpc.StatusCode.NOT_FOUND),
    ]
    for request, code in cases:

        def call(request: apb.VerifyRunsRequest = request) -> object:
            return stub.VerifyRuns(request, timeout=30)

        assert refusal(call).code() == code, request
    other = stub.VerifyRuns(apb.VerifyRunsRequest(namespace="other", all=True), timeout=30)
    assert list(other.runs) == [] and other.next_page_token == ""

    # --all pages through the namespace's runs in id order, each once.
    second = start_run(control_plane.stub, "elsewhere", {"trail": []})
    seen, token = [], ""
    while True:
        page = stub.VerifyRuns(
            apb.VerifyRunsRequest(all=True, page_size=1, page_token=token), timeout=30
        )
        assert len(page.runs) == 1 and page.runs[0].ok
        seen.append(page.runs[0].run_id)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted([run_id, second])


@pytest.mark.parametrize("args", [(), ("some-run", "--all")])
def test_the_cli_wants_run_ids_or_all(control_plane: ControlPlane, args: tuple[str, ...]) -> None:
    result = run_cli("audit", "verify", *args, "--address", control_plane.address)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: give run ids or --all (one of them)"
