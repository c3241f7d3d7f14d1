"""Acceptance: a definition whose graph or expressions are wrong is refused when it is
registered, with INVALID_ARGUMENT naming the node and the field, and nothing is stored.

The new node kinds bring new ways to be wrong: references to nodes through approved_next,
rejected_next, switch cases, parallel branches and timeouts; cycles through branches; and
expressions in conditions, approver views, correlation keys and compensation inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.support.databases import database_params, fresh_database
from tests.support.processes import PROCESSES, ControlPlane, ProcessRegistry, process_environment
from tests.support.runs import register
from tests.support.waits import field_violations, refusal
from tests.support.workflows import task_node


@pytest.fixture(scope="module", params=database_params())
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """One control plane per store for the module: a refused definition writes nothing, so
    the tests cannot disturb one another (and each checks that it did not)."""
    directory = tmp_path_factory.mktemp("bad-definitions")
    with fresh_database(request.param, directory) as url:
        registry = ProcessRegistry(directory / "processes", process_environment())
        try:
            control_plane = ControlPlane(registry, url)
            control_plane.start()
            yield control_plane
            assert control_plane.stop() == 0
        finally:
            registry.kill_all()


@pytest.fixture(autouse=True)
def _show_server_output_on_failure(request: pytest.FixtureRequest, server: ControlPlane) -> None:
    request.node.stash[PROCESSES] = server.registry


def stored_definitions(server: ControlPlane) -> list[tuple[str, str, str]]:
    listed = server.stub.ListDefinitions(ws.ListDefinitionsRequest(), timeout=30)
    return sorted((d.name, d.version, d.content_hash) for d in listed.definitions)


def workflow(name: str, *nodes: dict[str, Any]) -> Any:
    return definition_from_dict({"name": name, "version": "1", "nodes": list(nodes)})


def approval(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "approval": {"title": "OK?", "approvers": ["alice"], **fields}}


def sleep(node_id: str, next_node: str = "") -> dict[str, Any]:
    return {"id": node_id, "sleep": {"seconds": 1}, **({"next": next_node} if next_node else {})}


def switch(node_id: str, *cases: tuple[str, str], default: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"cases": [{"condition": c, "next": n} for c, n in cases]}
    if default:
        body["default_next"] = default
    return {"id": node_id, "switch": body}


def wait_event(node_id: str, key: str = "input.order", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "wait_event": {"event_name": "paid", "correlation_key": key, **fields}}


def end(node_id: str) -> dict[str, Any]:
    return task_node(node_id, None, "input")


# name -> (definition, the field that must be named, what its description must say)
MALFORMED: dict[str, tuple[Any, str, str]] = {
    "unreachable-sleep": (
        workflow("unreachable", end("a"), sleep("island", "a")),
        "definition.nodes[1]",
        "node 'island' is unreachable",
    ),
    "cycle-without-exit": (
        workflow("cycle", sleep("nap", "work"), task_node("work", "nap", "input")),
        "definition.nodes[0]",
        "node 'nap' is in a cycle without exit",
    ),
    "cycle-through-approval-branches": (
        workflow(
            "approval-cycle",
            approval("ask", approved_next="work", rejected_next="work"),
            task_node("work", "ask", "input"),
        ),
        "definition.nodes[0]",
        "node 'ask' is in a cycle without exit",
    ),
    "unknown-next": (
        workflow("unknown-next", sleep("nap", "nowhere")),
        "definition.nodes[0].next",
        "node 'nap': next node 'nowhere' does not exist",
    ),
    "unknown-approved-next": (
        workflow("unknown-approved", approval("ask", approved_next="nowhere")),
        "definition.nodes[0].approval.approved_next",
        "node 'ask': node 'nowhere' does not exist",
    ),
    "unknown-rejected-next": (
        workflow("unknown-rejected", approval("ask", rejected_next="nowhere")),
        "definition.nodes[0].approval.rejected_next",
        "node 'ask': node 'nowhere' does not exist",
    ),
    "unknown-switch-case-next": (
        workflow("unknown-case", switch("route", ("input.big", "nowhere"), default="a"), end("a")),
        "definition.nodes[0].switch.cases[0].next",
        "node 'route': node 'nowhere' does not exist",
    ),
    "unknown-switch-default": (
        workflow(
            "unknown-default", switch("route", ("input.big", "a"), default="nowhere"), end("a")
        ),
        "definition.nodes[0].switch.default_next",
        "node 'route': node 'nowhere' does not exist",
    ),
    "unknown-parallel-branch": (
        workflow(
            "unknown-branch",
            {"id": "fan", "parallel": {"branches": ["a", "nowhere"]}},
            end("a"),
        ),
        "definition.nodes[0].parallel.branches[1]",
        "node 'fan': branch start 'nowhere' does not exist",
    ),
    "unknown-timeout-next": (
        workflow("unknown-timeout", wait_event("pay", timeout_seconds=5, timeout_next="nowhere")),
        "definition.nodes[0].wait_event.timeout_next",
        "node 'pay': timeout node 'nowhere' does not exist",
    ),
    "bad-switch-condition": (
        workflow("bad-condition", switch("route", ("input.amount >", "a"), default="a"), end("a")),
        "definition.nodes[0].switch.cases[0].condition",
        "node 'route': bad expression",
    ),
    "bad-approval-show": (
        workflow("bad-show", approval("ask", show={"amount": "input.[amount"})),
        "definition.nodes[0].approval.show[amount]",
        "node 'ask': bad expression",
    ),
    "bad-correlation-key": (
        workflow("bad-key", wait_event("pay", key="input.order[")),
        "definition.nodes[0].wait_event.correlation_key",
        "node 'pay': bad expression",
    ),
    "bad-compensate-input": (
        workflow(
            "bad-compensation",
            task_node("charge", None, "input")
            | {
                "task": task_node("charge", None, "input")["task"]
                | {
                    "compensate_step": "refund",
                    "compensate_input": "self.output.(",
                    "compensate_idempotency": "key",
                }
            },
        ),
        "definition.nodes[0].task.compensate_input",
        "node 'charge': bad expression",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_definition_is_refused_naming_the_node(server: ControlPlane, case: str) -> None:
    bad, field, description = MALFORMED[case]
    before = stored_definitions(server)

    error = refusal(lambda: register(server.stub, bad))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    violations = field_violations(error)
    assert any(f == field and description in d for f, d in violations), violations
    assert stored_definitions(server) == before
    lookup = ws.GetDefinitionRequest(name=bad.name, version="1")
    missing = refusal(lambda: server.stub.GetDefinition(lookup, timeout=30))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_cycle_with_an_exit_is_accepted(server: ControlPlane) -> None:
    """The refusals above are about the missing exit, not about cycles: a poll loop is fine."""
    poll = workflow(
        "poll-until-ready",
        task_node("check", "ready", "input"),
        switch("ready", ("steps.check.output.attempt < `3`", "wait"), default="done"),
        sleep("wait", "check"),
        end("done"),
    )
    before = stored_definitions(server)

    registered = register(server.stub, poll)

    assert registered.created
    after = stored_definitions(server)
    assert [d for d in after if d not in before] == [
        ("poll-until-ready", "1", registered.info.content_hash)
    ]
