"""Request ids on both stores: the embedded SQLite default keeps answers as PostgreSQL does
(`surefoot dev` is where integrators first try a retry)."""

from __future__ import annotations

import uuid

import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from tests.request_ids.request_support import REPEATED, held
from tests.support.processes import ControlPlane
from tests.support.runs import events_of, history, register, start_run

pytestmark = pytest.mark.usefixtures("database_url")


def test_a_pause_repeated_with_its_id_pauses_once(control_plane: ControlPlane) -> None:
    stub = control_plane.stub
    register(stub, held("held"))
    run_id = start_run(stub, "held", {})
    pause = ws.PauseRunRequest(run_id=run_id, request_id=uuid.uuid4().hex)
    first = stub.PauseRun(pause, timeout=30)
    second, call = stub.PauseRun.with_call(pause, timeout=30)
    assert REPEATED in tuple(call.trailing_metadata()) and second == first
    assert len(events_of(history(stub, run_id), "RUN_PAUSED")) == 1
