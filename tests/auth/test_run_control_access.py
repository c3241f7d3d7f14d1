"""Run control under credentials: pausing, resuming and forking need the operator role;
reading a run as of a seq needs a viewer. Refused callers write nothing, and the principal
of a pause is the credential's."""

from __future__ import annotations

import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import (
    A_OPERATOR,
    A_VIEWER,
    TEAM_A,
    SecuredControlPlane,
    bearer,
    refused,
    row_counts,
    start_held_run,
)
from tests.support.runs import payload_value

pytestmark = pytest.mark.postgres


def test_a_viewer_may_replay_but_not_pause_resume_or_fork(secured: SecuredControlPlane) -> None:
    stub = secured.stub
    run_id = start_held_run(stub, TEAM_A)
    token = bearer(A_VIEWER)
    at = stub.GetRunAt(
        ws.GetRunAtRequest(namespace=TEAM_A, run_id=run_id, seq=1), timeout=30, metadata=token
    )
    assert at.snapshot.seq == 1
    before = row_counts(secured.database_url)
    state_before = stub.GetRun(
        ws.GetRunRequest(namespace=TEAM_A, run_id=run_id), timeout=30, metadata=token
    ).run
    for call, request in [
        (stub.PauseRun, ws.PauseRunRequest(namespace=TEAM_A, run_id=run_id, reason="x")),
        (stub.ResumeRun, ws.ResumeRunRequest(namespace=TEAM_A, run_id=run_id)),
        (stub.ForkRun, ws.ForkRunRequest(namespace=TEAM_A, run_id=run_id, from_node="sign")),
    ]:
        error = refused(call, request, token)
        assert error.code().name == "PERMISSION_DENIED", error.details()
    assert row_counts(secured.database_url) == before
    after = stub.GetRun(
        ws.GetRunRequest(namespace=TEAM_A, run_id=run_id), timeout=30, metadata=token
    ).run
    assert after == state_before


def test_an_operator_pauses_as_itself(secured: SecuredControlPlane) -> None:
    stub = secured.stub
    run_id = start_held_run(stub, TEAM_A)
    token = bearer(A_OPERATOR)
    run = stub.PauseRun(
        ws.PauseRunRequest(namespace=TEAM_A, run_id=run_id, reason="audit"),
        timeout=30,
        metadata=token,
    ).run
    events = stub.GetRunHistory(
        ws.GetRunHistoryRequest(namespace=TEAM_A, run_id=run_id), timeout=30, metadata=token
    ).events
    paused = events[-1]
    assert payload_value(paused.data) == {"reason": "audit"}
    assert paused.principal == run.paused.paused_by == "otto"
    stub.ResumeRun(ws.ResumeRunRequest(namespace=TEAM_A, run_id=run_id), timeout=30, metadata=token)
