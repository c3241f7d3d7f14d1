"""Helpers of the dead-letter triage tests: workflows that dead-letter on demand, the dead
letters as the API lists them, and a snapshot of a run to prove a refusal changed nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from surefoot.v1 import definition_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from controlplane.cli.main import main
from tests.support.processes import ControlPlane
from tests.support.runs import Stub, get_run, history, status_name, wait_for_status
from tests.support.workflows import QUICK_RETRY, shaped_by, task_node, three_steps

CALL_TIMEOUT = 30.0
# For tests whose subject does not depend on the store (the engine's or the API's rules), or
# that are about the production store: run them on PostgreSQL only to keep the folder quick.
POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
# Run inputs of `one_attempt_b` workflows; b gives up on its first attempt with each error.
DECLINED = {"trail": [], "b": {"non_retryable": True}}  # CardDeclined (NonRetryableError)
FLAKY = {"trail": [], "b": {"fail_times": 1}}  # FlakyDependency, fine on attempt 2
CARD_DECLINED_MESSAGE = "b: card 4242 declined"


def one_attempt_b(name: str) -> definition_pb2.WorkflowDefinition:
    """a → b → c (support/workflows.three_steps) where b has a single attempt, so that any
    failure of b dead-letters it at once, whatever its error type."""
    definition = three_steps(name)
    definition.nodes[1].task.retry.max_attempts = 1
    return definition


def saga_with_failing_undo(name: str) -> definition_pb2.WorkflowDefinition:
    """a → b → c; a and b are undone by e2e-work (one attempt), c's failure compensates.

    The run input's `undo.<node>` object shapes that node's compensation like any e2e-work
    input, so `{"undo": {"b": {"non_retryable": true}}}` dead-letters b's compensation.
    """

    def undone(node_id: str, next_node: str, source: str) -> dict[str, Any]:
        node = task_node(node_id, next_node, shaped_by(source, node_id))
        node["task"] |= {
            "compensate_step": "e2e-work",
            "compensate_input": f"merge({{trail: self.output.trail}}, "
            f"input.undo.{node_id} || `{{}}`)",
            "compensate_idempotency": "key",
            "compensate_retry": dict(QUICK_RETRY, max_attempts=1),
        }
        return node

    c = task_node("c", None, shaped_by("steps.b.output.trail", "c"))
    c["task"]["on_failure"] = "compensate"
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                undone("a", "b", "input.trail"),
                undone("b", "c", "steps.a.output.trail"),
                c,
            ],
        }
    )


def dead_letters(stub: Stub, **filters: str) -> list[ws.DeadLetter]:
    """The first page (up to 1000) of dead letters matching `filters`, oldest first."""
    request = ws.ListDeadLettersRequest(filter=ws.DeadLetterFilter(**filters), page_size=1000)
    return list(stub.ListDeadLetters(request, timeout=CALL_TIMEOUT).dead_letters)


def groups(stub: Stub, **filters: str) -> list[tuple[str, str, str, int]]:
    """(workflow, step type, error type, count) of each group, in the order listed."""
    request = ws.ListDeadLettersRequest(filter=ws.DeadLetterFilter(**filters), grouped=True)
    response = stub.ListDeadLetters(request, timeout=CALL_TIMEOUT)
    return [(g.workflow_name, g.step_type, g.error_type, g.count) for g in response.groups]


def wait_all(stub: Stub, run_ids: list[str], status: str) -> None:
    for run_id in run_ids:
        wait_for_status(stub, run_id, status)


@dataclass(frozen=True)
class Snapshot:
    """What a refused request must leave as it was: the run's status and its history."""

    status: str
    events: int
    dead_letters: tuple[tuple[str, str, int], ...]


def snapshot(stub: Stub, run_id: str) -> Snapshot:
    listed = tuple(
        (d.node_id, d.error_type, d.attempts) for d in dead_letters(stub) if d.run_id == run_id
    )
    return Snapshot(status_name(get_run(stub, run_id).status), len(history(stub, run_id)), listed)


Capture = pytest.CaptureFixture[str]


def cli(control_plane: ControlPlane, capsys: Capture, *args: str) -> tuple[int, str, str]:
    """`surefoot ARGS --address <the control plane>` in this process: exit code, out, err."""
    code = main([*args, "--address", control_plane.address])
    out, err = capsys.readouterr()
    return code, out, err


def cells(line: str) -> list[str]:
    """The cells of a table line: columns are two spaces or more apart, cells have single
    spaces at most (run ids, node ids and the messages of these tests)."""
    return re.split(r"\s{2,}", line.strip())
