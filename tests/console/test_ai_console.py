"""The console's AI views against real runs: a control plane with credentials, the connector
worker calling a scripted model endpoint (controlplane/model_server.py), histories the engine
wrote. The run view shows the replies, the validation errors and the repair of a step that
was repaired; the dead-letter view shows the last raw reply of a step out of repairs; a
human review is approved with an output from the approvals screen (`a`): bad JSON is held
in the dialog, an output the schema refuses is refused by the server and writes nothing, a
fitting one continues the run (from the run view, `y` asks for it); the definitions view
lists a version's recorded evaluations, and says "no evaluations" for one nobody evaluated."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from surefoot.v1 import definition_pb2, evaluation_service_pb2_grpc
from surefoot.v1 import evaluation_service_pb2 as epb
from surefoot.v1 import workflow_service_pb2 as ws
from textual.widgets import Static, TextArea

from console.client import ControlPlane
from console.inspector import Inspector
from console.live_table import LiveTable
from console.modals import JsonModal, TextModal
from console.screens.approvals import ApprovalsScreen
from console.screens.dead_letter_item import DeadLetterScreen
from console.screens.definitions import DefinitionsScreen
from console.screens.run import RunScreen
from console.trace_table import TraceTable
from controlplane.model_server import ModelServer, Reply
from tests.console.console_support import SIZE, console, notifications, until
from tests.console.fake_control_plane import ScreenApp
from tests.e2e_ai.conftest import MODEL_KEY, MODEL_KEY_SECRET, TICKET, ai_definition, connection
from tests.support.approval_auth import ALICE, AuthControlPlane, bearer, write_auth_file
from tests.support.processes import (
    WORKER_CONNECTED,
    ManagedProcess,
    ProcessRegistry,
    surefoot_command,
)
from tests.support.runs import (
    get_run,
    history,
    payload_value,
    register,
    start_run,
    status_name,
    wait_for_status,
)

VALID = {"label": "billing", "confidence": 0.9}
CUT_SHORT = '{"label": "billing", "confidence": '


@pytest.fixture
def control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    """With credentials: a decision needs a principal (the console acts as alice)."""
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    assert server.stop() in (0, None)


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture
def ai_worker(control_plane: AuthControlPlane, processes: ProcessRegistry) -> ManagedProcess:
    """The connector worker (surefoot.ai), holding the model key."""
    args = surefoot_command("connectors", "worker", "--address", control_plane.address)
    env = {**processes.env, f"SUREFOOT_SECRET_{MODEL_KEY_SECRET.upper()}": MODEL_KEY}
    process = ManagedProcess("ai-connector-worker", args, processes.log_dir, env)
    processes.processes.append(process)
    process.wait_for_stdout(WORKER_CONNECTED)
    return process


def reviewed(model: ModelServer) -> definition_pb2.WorkflowDefinition:
    review = definition_pb2.AiFallback(
        human_review=definition_pb2.AiHumanReview(title="Label this ticket")
    )
    return ai_definition("reviewed", [connection(model)], fallbacks=[review], max_repairs=1)


def on_run(run_id: str) -> Any:
    return lambda control_plane: RunScreen(control_plane, run_id)


def test_the_run_view_shows_a_real_repair(
    control_plane: AuthControlPlane, ai_worker: ManagedProcess, model: ModelServer
) -> None:
    stub = control_plane.stub
    register(stub, ai_definition("repaired", [connection(model)], max_repairs=1))
    model.script("main", [Reply.text(CUT_SHORT), Reply.json(VALID)])
    run_id = start_run(stub, "repaired", TICKET)
    wait_for_status(stub, run_id, "COMPLETED")

    async def scenario() -> None:
        app = ScreenApp(ControlPlane(control_plane.address, "default", ALICE), on_run(run_id))
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, RunScreen)
            table = screen.query_one(TraceTable)
            inspector = screen.query_one(Inspector)
            await until(pilot, lambda: screen.run is not None and "classify" in table.keys, "run")
            table.select("classify")
            await until(pilot, lambda: "calls" in (inspector.sections.get("ai") or {}), "calls")
            ai = inspector.sections["ai"]
            assert ai["outcome"] == "valid reply from main" and ai["output"] == VALID
            assert ai["summary"].startswith("2 calls · 1 repair · 30 tokens")
            first, second = ai["calls"]
            assert first["reply"] == CUT_SHORT and first["valid"] is False and first["errors"]
            assert first["prompt"]["user"] == "Ticket from ada: the invoice was charged twice"
            assert second["repair"] == 1 and json.loads(second["reply"]) == VALID
            assert all(MODEL_KEY not in json.dumps(call) for call in ai["calls"])

    asyncio.run(scenario())


def test_the_dead_letter_view_shows_the_last_raw_reply_of_a_step_out_of_repairs(
    control_plane: AuthControlPlane, ai_worker: ManagedProcess, model: ModelServer
) -> None:
    stub = control_plane.stub
    register(stub, ai_definition("unrepaired", [connection(model)], max_repairs=1))
    model.script("main", [Reply.text("I think it is billing"), Reply.text("billing, surely")])
    run_id = start_run(stub, "unrepaired", TICKET)
    wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    listed = stub.ListDeadLetters(ws.ListDeadLettersRequest(namespace="default"), timeout=10)
    [dead] = [d for d in listed.dead_letters if d.run_id == run_id]
    assert dead.error_type == "AiOutputInvalid"

    async def scenario() -> None:
        control = ControlPlane(control_plane.address, "default", ALICE)
        app = ScreenApp(control, lambda cp: DeadLetterScreen(cp, dead))
        async with app.run_test(size=SIZE) as pilot:

            def item() -> str:
                return str(app.screen.query_one("#item", Static).content)

            await until(pilot, lambda: "last raw reply:" in item(), "the last reply")
            lines = item().splitlines()
            assert lines[lines.index("last raw reply:") + 1] == "billing, surely"
            assert "model calls: 2 (1 repair turn), no reply validated" in lines
            errors = lines[lines.index("validation errors:") + 1 :]
            assert errors and errors[0].startswith("  - the reply is not valid JSON")
            assert MODEL_KEY not in item()

    asyncio.run(scenario())


def test_a_human_review_is_approved_with_an_output_from_the_approvals_screen(
    control_plane: AuthControlPlane, ai_worker: ManagedProcess, model: ModelServer
) -> None:
    stub = control_plane.stub
    register(stub, reviewed(model))
    model.script("main", [Reply.text("no idea"), Reply.text("still no idea")])
    run_id = start_run(stub, "reviewed", TICKET)
    wait_for_status(stub, run_id, "WAITING")
    approval_id = f"{run_id}:classify"
    written = len(history(stub, run_id))

    async def scenario() -> None:
        app = console(control_plane.address, ALICE)
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ApprovalsScreen), "approvals")
            table = app.screen.query_one(LiveTable)
            await until(pilot, lambda: approval_id in table.keys, "the review listed")
            table.move_cursor(row=table.keys.index(approval_id))

            async def dialog() -> TextArea:
                await pilot.press("a")
                await until(pilot, lambda: isinstance(app.screen, JsonModal), "output dialog")
                return app.screen.query_one(TextArea)

            # The model's reply is no JSON object: the dialog starts from an empty one.
            editor = await dialog()
            assert json.loads(editor.text) == {}
            editor.text = "{not json"
            await pilot.press("ctrl+s")
            error = app.screen.query_one("#json-error", Static)
            await until(pilot, lambda: str(error.content), "bad JSON held in the dialog")
            assert isinstance(app.screen, JsonModal)

            # JSON the node's schema refuses: the server says so, in one line.
            editor.text = json.dumps({"label": "sales", "confidence": 2})
            await pilot.press("ctrl+s")
            await until(pilot, lambda: any("INVALID_ARGUMENT" in s for s in shown), "refused")
            assert len(history(stub, run_id)) == written
            assert status_name(get_run(stub, run_id).status) == "WAITING"

            (await dialog()).text = json.dumps(VALID)
            await pilot.press("ctrl+s")
            await until(
                pilot, lambda: f"approved {approval_id} with an output as alice" in shown, "ok"
            )

    asyncio.run(scenario())
    run = wait_for_status(stub, run_id, "COMPLETED")
    assert payload_value(run.output) == VALID
    reviews = [
        e.data["ai"]
        for e in history(stub, run_id)
        if e.node_id == "classify" and (e.data or {}).get("ai", {}).get("source") == "human_review"
    ]
    assert reviews == [{"source": "human_review", "decided_by": "alice", "output": VALID}]


def test_the_definitions_view_says_no_evaluations_for_a_version_nobody_evaluated(
    control_plane: AuthControlPlane, model: ModelServer
) -> None:
    register(control_plane.stub, ai_definition("unevaluated", [connection(model)]))

    async def scenario() -> str:
        control = ControlPlane(control_plane.address, "default", ALICE)
        app = ScreenApp(control, DefinitionsScreen)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, DefinitionsScreen)
            versions = screen.definitions
            await until(pilot, lambda: versions.keys, "the version listed")
            await pilot.press("v")
            await until(pilot, lambda: isinstance(app.screen, TextModal), "the evaluations")
            return app.screen.query_one(TextArea).text

    text = asyncio.run(scenario())
    assert text.startswith("unevaluated@1: no evaluations"), text


def test_approving_a_review_from_the_run_view_asks_for_the_output(
    control_plane: AuthControlPlane, ai_worker: ManagedProcess, model: ModelServer
) -> None:
    stub = control_plane.stub
    register(stub, reviewed(model))
    # The last reply is a JSON object that breaks the schema: the dialog starts from it.
    almost = {"label": "billing", "confidence": 1.5}
    model.script("main", [Reply.text("no idea"), Reply.json(almost)])
    run_id = start_run(stub, "reviewed", TICKET)
    wait_for_status(stub, run_id, "WAITING")

    async def scenario() -> None:
        app = ScreenApp(ControlPlane(control_plane.address, "default", ALICE), on_run(run_id))
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, RunScreen)
            table = screen.query_one(TraceTable)
            await until(pilot, lambda: screen.run is not None and "classify" in table.keys, "run")
            table.select("classify")
            await until(pilot, lambda: screen.events and screen.selected_node, "history read")
            await pilot.press("y")
            await until(pilot, lambda: isinstance(app.screen, JsonModal), "the output dialog")
            editor = app.screen.query_one(TextArea)
            assert json.loads(editor.text) == almost
            editor.text = json.dumps(VALID)
            await pilot.press("ctrl+s")
            done = f"approved {run_id}:classify with an output as alice"
            await until(pilot, lambda: done in shown, "approved with the output")

    asyncio.run(scenario())
    run = wait_for_status(stub, run_id, "COMPLETED")
    assert payload_value(run.output) == VALID


def test_the_definitions_view_lists_a_recorded_evaluation(
    control_plane: AuthControlPlane, model: ModelServer
) -> None:
    register(control_plane.stub, ai_definition("evaluated", [connection(model)]))
    evaluations = evaluation_service_pb2_grpc.EvaluationServiceStub(control_plane.channel)
    recorded = epb.Evaluation(
        workflow_name="evaluated",
        workflow_version="1",
        kind="recorded",  # re-scored real runs: no eval set needed
        score=0.75,
        threshold=0.8,
        passed=False,
        cases=4,
        passed_cases=3,
        comment="ci job 7",
    )
    evaluations.RecordEvaluation(
        epb.RecordEvaluationRequest(evaluation=recorded), metadata=bearer(ALICE), timeout=10
    )

    async def scenario() -> str:
        control = ControlPlane(control_plane.address, "default", ALICE)
        app = ScreenApp(control, DefinitionsScreen)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, DefinitionsScreen)
            await until(pilot, lambda: screen.definitions.keys, "the version listed")
            await pilot.press("v")
            await until(pilot, lambda: isinstance(app.screen, TextModal), "the evaluations")
            return app.screen.query_one(TextArea).text

    lines = asyncio.run(scenario()).splitlines()
    assert lines[0] == "evaluated@1: 1 evaluation(s), 0 passed, newest first"
    assert "FAILED 0.75 < 0.80 · 3/4 cases · recorded · by alice at " in lines[2], lines
    assert lines[2].endswith(" · ci job 7")
