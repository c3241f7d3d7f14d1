"""Helpers of the blocked-on tests: GetRun's blockers of a run, waited for by kind."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import run_pb2

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, run_cli
from tests.support.runs import Stub, get_run

# Timestamps go through the database and protobuf; allow for their rounding.
CLOCK_TOLERANCE = 0.002


def kind_name(kind: run_pb2.BlockedOnKind.ValueType) -> str:
    return run_pb2.BlockedOnKind.Name(kind).removeprefix("BLOCKED_ON_KIND_")


def blocked_on(stub: Stub, run_id: str, *kinds: str, timeout: float = 60.0) -> run_pb2.Run:
    """The run once its blockers are exactly `kinds` (in step order)."""

    def reached() -> run_pb2.Run | None:
        run = get_run(stub, run_id)
        found = [kind_name(b.kind) for b in run.blocked_on]
        return run if found == list(kinds) else None

    return assert_eventually(reached, timeout, message=f"run {run_id} is blocked on {kinds}")


def seconds(value: Timestamp) -> float:
    return value.seconds + value.nanos / 1e9


def why(control_plane: ControlPlane, run_id: str) -> list[str]:
    """The lines `surefoot runs why RUN_ID` prints."""
    done = run_cli("runs", "why", run_id, "--address", control_plane.address)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def why_json(control_plane: ControlPlane, run_id: str) -> Any:
    done = run_cli("runs", "why", run_id, "--json", "--address", control_plane.address)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
