"""An AI node's human review as the rest of Surefoot sees it, and a version awaiting its eval.

Real processes: a control plane with credentials, the connector worker calling a scripted
model endpoint, the `surefoot` CLI as a user runs it. A run at a review is blocked on an
APPROVAL like any approval (who may decide, since when, the deadline), on GetRun and
`surefoot runs why`; `approvals list|show` print the reply and the errors the reviewer
decides on; `approvals approve --output` gives the node its output, bad JSON is exit 2 and
a refused output one line, both writing nothing. A workflow whose only versions await a
passing evaluation says so (FAILED_PRECONDITION), not that they are deprecated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from surefoot.v1 import definition_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.model_server import ModelServer, Reply
from tests.e2e_ai.conftest import MODEL_KEY, TICKET, StartAiWorker, ai_definition, connection
from tests.e2e_ai.test_ai_review import BILLING, written
from tests.e2e_blocked_on.blocked_support import blocked_on
from tests.support.approval_auth import BOB, OPERATOR, AuthControlPlane, write_auth_file
from tests.support.processes import ProcessRegistry, run_cli
from tests.support.runs import (
    CALL_TIMEOUT,
    events_of,
    json_payload,
    list_runs,
    register,
    start_run,
    wait_for_status,
)
from tests.support.runs import history as read_history
from tests.support.waits import get_approval, refusal

REPLY = "it is about money"


@pytest.fixture
def control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    """The shared fixtures' control plane, with credentials: a decision needs a principal."""
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    assert server.stop() in (0, None)


def in_review(
    plane: AuthControlPlane, server: ModelServer, ai_worker: StartAiWorker, name: str
) -> str:
    """A run whose model answered no JSON three times (a reply and 2 repairs), at the review
    of bob or the managers, due in an hour."""
    server.script("main", [Reply.text(REPLY)] * 3)
    review = definition_pb2.AiFallback(
        human_review=definition_pb2.AiHumanReview(
            title="Fix the class", approvers=["bob", "group:managers"], timeout_seconds=3600
        )
    )
    register(plane.stub, ai_definition(name, [connection(server)], fallbacks=[review]))
    ai_worker()
    return start_run(plane.stub, name, TICKET)


def cli(plane: AuthControlPlane, *args: str, token: str = OPERATOR) -> tuple[int, str, str]:
    done = run_cli(*args, "--address", plane.address, SUREFOOT_TOKEN=token)
    return done.returncode, done.stdout, done.stderr


def test_a_run_at_an_ai_review_is_blocked_on_an_approval_on_get_run_and_runs_why(
    control_plane: AuthControlPlane, model_server: ModelServer, ai_worker: StartAiWorker
) -> None:
    plane = control_plane
    run_id = in_review(plane, model_server, ai_worker, "review-blocked")

    run = blocked_on(plane.stub, run_id, "APPROVAL")

    approval = get_approval(plane.stub, f"{run_id}:classify")
    [blocker] = run.blocked_on
    assert blocker.node_id == "classify"
    assert blocker.WhichOneof("detail") == "approval"
    assert blocker.approval.approval_id == approval.id == f"{run_id}:classify"
    assert blocker.approval.title == "Fix the class"
    assert list(blocker.approval.approvers) == ["bob", "group:managers"]
    assert not blocker.approval.escalated
    assert blocker.since == approval.requested_at
    assert blocker.until == approval.deadline
    assert blocker.description.startswith("review of the model's reply 'Fix the class'")
    assert f"(id {approval.id}) by bob, group:managers" in blocker.description
    assert "deadline" in blocker.description and "no deadline" not in blocker.description

    code, out, err = cli(plane, "runs", "why", run_id)
    assert (code, err) == (0, "")
    assert f"approval: {blocker.description}" in out.splitlines()
    code, out, _ = cli(plane, "runs", "why", run_id, "--json")
    assert code == 0
    [shown] = json.loads(out)["blocked_on"]
    assert shown["approval"]["approval_id"] == approval.id


def test_approvals_cli_shows_the_reply_and_approves_a_review_with_its_output(
    control_plane: AuthControlPlane,
    model_server: ModelServer,
    ai_worker: StartAiWorker,
    database_url: str,
    tmp_path: Path,
) -> None:
    plane = control_plane
    run_id = in_review(plane, model_server, ai_worker, "review-cli")
    approval_id = f"{run_id}:classify"
    wait_for_status(plane.stub, run_id, "WAITING")

    code, out, err = cli(plane, "approvals", "list")
    assert (code, err) == (0, "")
    [line] = [line for line in out.splitlines() if line.startswith(f"{approval_id}: ")]
    assert line.startswith(f'{approval_id}: AI review, model reply "{REPLY}", ')
    assert "error(s): " in line

    code, out, err = cli(plane, "approvals", "show", approval_id)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    reply_at = lines.index("model reply (it did not validate):")
    assert lines[reply_at + 1] == f"  {REPLY}"
    assert lines[reply_at + 2] == "errors:"
    assert lines[reply_at + 3].startswith("  - ") and len(lines[reply_at + 3]) > 4
    assert f"surefoot approvals approve {approval_id} --output JSON" in out
    for output in (out, err):
        assert MODEL_KEY not in output

    before = written(database_url, run_id)
    # Bad JSON, or a file that is not there: exit 2, one line, nothing sent.
    for given in ('{"label": ', f"@{tmp_path / 'missing.json'}"):
        code, out, err = cli(plane, "approvals", "approve", approval_id, "--output", given)
        assert (code, out) == (2, ""), err
        assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    # The server's refusals of the output: exit 1, one line naming the field.
    refused = [
        (["--output", json.dumps({"label": "refund", "confidence": 2})], "schema"),
        ([], "needs the output"),
    ]
    for extra, words in refused:
        code, out, err = cli(plane, "approvals", "approve", approval_id, *extra, token=BOB)
        assert (code, out) == (1, ""), err
        [message] = err.splitlines()
        assert message.startswith("error: INVALID_ARGUMENT: output: "), message
        assert words in message, message
    assert written(database_url, run_id) == before

    chosen = tmp_path / "output.json"
    chosen.write_text(json.dumps(BILLING))
    code, out, err = cli(
        plane, "approvals", "approve", approval_id, "--output", f"@{chosen}", token=BOB
    )
    assert (code, out, err) == (0, f"approved {approval_id} as bob\n", "")

    wait_for_status(plane.stub, run_id, "COMPLETED")
    [decision] = events_of(read_history(plane.stub, run_id), "APPROVAL_DECIDED", "classify")
    assert decision.data["ai"] == {"source": "human_review", "decided_by": "bob", "output": BILLING}


def test_a_workflow_whose_versions_await_an_evaluation_says_so_and_starts_nothing(
    control_plane: AuthControlPlane, model_server: ModelServer
) -> None:
    plane = control_plane
    gated = ai_definition("gated", [connection(model_server)])
    gated.require_eval = True
    register(plane.stub, gated)

    def starting() -> object:
        request = ws.StartRunRequest(workflow_name="gated", input=json_payload(TICKET))
        return plane.stub.StartRun(request, timeout=CALL_TIMEOUT)

    def reading() -> object:
        request = ws.GetDefinitionRequest(name="gated")
        return plane.stub.GetDefinition(request, timeout=CALL_TIMEOUT)

    for call in (starting, reading):
        error = refusal(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
        details = error.details() or ""
        assert "gated@1 awaits a passing evaluation (run `surefoot eval gated@1`)" in details
        assert "deprecated" not in details
    assert list_runs(plane.stub, workflow_name="gated") == []
    named = plane.stub.GetDefinition(
        ws.GetDefinitionRequest(name="gated", version="1"), timeout=CALL_TIMEOUT
    )
    assert named.definition.require_eval

    # A second version awaiting its evaluation is the one named: it is the newest.
    gated.version = "2"
    register(plane.stub, gated)
    assert "gated@2 awaits" in (refusal(starting).details() or "")
