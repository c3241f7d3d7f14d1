"""Acceptance: a refused definition or run input reports every problem at once, each naming
its node, and stores nothing (law 8).

tests/e2e/test_e2e_bad_input.py and tests/e2e_waits/test_bad_definitions.py check one
problem per definition. An author who fixes one error only to be told of the next one
wastes a round trip per error, so here a definition has many, in several nodes and node
kinds, and the refusal must list them all. It is a new version of a registered workflow,
so that "nothing stored" also means that the latest version did not move.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from surefoot.v1 import definition_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.support.approval_auth import AuthControlPlane
from tests.support.runs import CALL_TIMEOUT, Stub, json_payload, list_runs, register
from tests.support.waits import field_violations, refusal
from tests.support.workflows import task_node

NAME = "invoice"
SCHEMA = {
    "type": "object",
    "properties": {"customer": {"type": "string"}, "amount": {"type": "number", "minimum": 1}},
    "required": ["customer", "amount"],
}

# (field, what its description must say) for every problem of `broken()`.
PROBLEMS = [
    ("definition.nodes[0].task.input", "node 'charge': bad expression"),
    (
        "definition.nodes[1].task.idempotency",
        "node 'notify': step type 'never-declared' has no idempotency declaration",
    ),
    ("definition.nodes[2].approval.show[amount]", "node 'ask': bad expression"),
    ("definition.nodes[2].approval.on_timeout", "node 'ask': must be approve, reject or escalate"),
    ("definition.nodes[3].switch.cases[0].next", "node 'route': node 'nowhere' does not exist"),
    ("definition.nodes[4].sleep", "node 'nap': give seconds or until"),
    ("definition.input_schema_json", "is not a valid JSON Schema"),
]


def good() -> definition_pb2.WorkflowDefinition:
    return definition_from_dict(
        {
            "name": NAME,
            "version": "1",
            "input_schema": SCHEMA,
            "nodes": [task_node("charge", None, "input")],
        }
    )


def broken() -> definition_pb2.WorkflowDefinition:
    """Version 2 of NAME with the problems of PROBLEMS, in five nodes and the schema."""
    never_declared: dict[str, Any] = {
        "id": "notify",
        "next": "ask",
        "task": {"step_type": "never-declared", "input": "input"},
    }
    return definition_from_dict(
        {
            "name": NAME,
            "version": "2",
            "input_schema_json": json.dumps({"type": "no-such-type"}),
            "nodes": [
                task_node("charge", "notify", "steps.[a"),
                never_declared,
                {
                    "id": "ask",
                    "next": "route",
                    "approval": {
                        "title": "OK?",
                        "show": {"amount": "input.[amount"},
                        "on_timeout": "maybe",
                        "timeout_seconds": 60,
                    },
                },
                {
                    "id": "route",
                    "switch": {
                        "cases": [{"condition": "input.big", "next": "nowhere"}],
                        "default_next": "nap",
                    },
                },
                {"id": "nap", "sleep": {}},
            ],
        }
    )


def stored(stub: Stub) -> tuple[list[tuple[str, str, str, bool]], list[tuple[str, int]]]:
    """Everything a refused request could have written: definitions and runs."""
    listed = stub.ListDefinitions(ws.ListDefinitionsRequest(), timeout=CALL_TIMEOUT)
    definitions = sorted(
        (d.name, d.version, d.content_hash, d.deprecated) for d in listed.definitions
    )
    return definitions, sorted((r.id, r.status) for r in list_runs(stub))


def start(stub: Stub, value: Any, request_id: str, version: str = "") -> ws.StartRunResponse:
    request = ws.StartRunRequest(
        workflow_name=NAME,
        workflow_version=version,
        input=json_payload(value),
        request_id=request_id,
    )
    return stub.StartRun(request, timeout=CALL_TIMEOUT)


def test_refusals_report_every_problem_and_store_nothing(control_plane: AuthControlPlane) -> None:
    stub = control_plane.stub
    register(stub, good())
    start(stub, {"customer": "ACME", "amount": 10}, "first")
    before = stored(stub)

    error = refusal(lambda: register(stub, broken()))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    violations = field_violations(error)
    for field, description in PROBLEMS:
        assert any(f == field and description in d for f, d in violations), (field, violations)
    assert len(violations) == len(PROBLEMS), violations
    assert f"(and {len(PROBLEMS) - 3} more)" in (error.details() or ""), error.details()
    assert stored(stub) == before
    latest = stub.GetDefinition(ws.GetDefinitionRequest(name=NAME), timeout=CALL_TIMEOUT)
    assert latest.info.version == "1"
    missing = refusal(lambda: start(stub, {"customer": "ACME", "amount": 10}, "", version="2"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND, missing

    # An input the schema refuses creates no run, and does not use up its request id.
    bad_input = refusal(lambda: start(stub, {"customer": 42, "amount": 0}, "retried"))
    assert bad_input.code() == grpc.StatusCode.INVALID_ARGUMENT, bad_input
    assert "input schema" in (bad_input.details() or "")
    assert stored(stub) == before
    retried = start(stub, {"customer": "Globex", "amount": 5}, "retried")
    assert retried.created and retried.workflow_version == "1"
    assert len(list_runs(stub)) == len(before[1]) + 1
