"""EvaluationService on a real control plane: require_eval and "latest", precise refusals
that write nothing, and roles (a viewer reads, an operator records)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import yaml
from surefoot.v1 import evaluation_service_pb2 as es
from surefoot.v1 import evaluation_service_pb2_grpc, workflow_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.auth.auth_support import (
    A_OPERATOR,
    A_VIEWER,
    ROOT,
    TEAM_A,
    TEAM_B,
    SecuredControlPlane,
    bearer,
    refused,
    row_counts,
    write_auth_file,
)
from tests.evaluation.eval_support import (
    CALL_TIMEOUT,
    EVAL_SET,
    evaluations_stub,
    latest_version,
    support,
)
from tests.support.processes import ControlPlane, ProcessRegistry

BASE_URL = "http://127.0.0.1:9/v1"  # never called: these tests make no model call
SET_TEXT = yaml.safe_dump(EVAL_SET)


def register(control_plane: ControlPlane, *versions: tuple[str, bool]) -> None:
    for version, require_eval in versions:
        definition = definition_from_dict(support(version, "m", BASE_URL, require_eval))
        request = ws.RegisterDefinitionRequest(definition=definition)
        control_plane.stub.RegisterDefinition(request, timeout=CALL_TIMEOUT)


def evaluation(version: str, passed: bool, **fields: Any) -> es.Evaluation:
    values: dict[str, Any] = {
        "workflow_name": "support",
        "workflow_version": version,
        "kind": "recorded",
        "score": 1.0 if passed else 0.5,
        "threshold": 0.9,
        "passed": passed,
        "cases": 1,
        "passed_cases": 1 if passed else 0,
        "case_results": [
            es.EvaluationCase(
                name="r1:classify",
                node_id="classify",
                passed=passed,
                score=1.0 if passed else 0.5,
                output_json=json.dumps({"category": "billing"}),
            )
        ],
    }
    return es.Evaluation(**(values | fields))


def record(control_plane: ControlPlane, given: es.Evaluation) -> es.Evaluation:
    request = es.RecordEvaluationRequest(evaluation=given)
    response = evaluations_stub(control_plane).RecordEvaluation(request, timeout=CALL_TIMEOUT)
    return response.evaluation


def test_a_require_eval_version_is_latest_only_once_an_evaluation_of_it_passed(
    control_plane: ControlPlane,
) -> None:
    register(control_plane, ("1", False), ("2", True))
    assert latest_version(control_plane) == "1"
    # StartRun without a version follows: it runs the latest.
    started = control_plane.stub.StartRun(
        ws.StartRunRequest(workflow_name="support", input=None), timeout=CALL_TIMEOUT
    )
    run = control_plane.stub.GetRun(ws.GetRunRequest(run_id=started.run_id), timeout=CALL_TIMEOUT)
    assert run.run.workflow_version == "1"

    failed = record(control_plane, evaluation("2", passed=False))
    assert (failed.passed, failed.recorded_by != "", failed.id != "") == (False, True, True)
    assert latest_version(control_plane) == "1"
    # A passed evaluation of another version does not count for this one.
    record(control_plane, evaluation("1", passed=True))
    assert latest_version(control_plane) == "1"

    record(control_plane, evaluation("2", passed=True))
    assert latest_version(control_plane) == "2"
    # A version registered after it without require_eval is latest at once.
    register(control_plane, ("3", False))
    assert latest_version(control_plane) == "3"


def test_evaluations_list_newest_first_in_pages(control_plane: ControlPlane) -> None:
    register(control_plane, ("1", False), ("2", False))
    made = [record(control_plane, evaluation(v, passed=True)) for v in ("1", "2", "2")]
    stub = evaluations_stub(control_plane)
    first = stub.ListEvaluations(
        es.ListEvaluationsRequest(workflow_name="support", page_size=2), timeout=CALL_TIMEOUT
    )
    second = stub.ListEvaluations(
        es.ListEvaluationsRequest(
            workflow_name="support", page_size=2, page_token=first.next_page_token
        ),
        timeout=CALL_TIMEOUT,
    )
    assert [e.id for e in [*first.evaluations, *second.evaluations]] == [m.id for m in made[::-1]]
    assert second.next_page_token == ""
    assert all(not e.case_results for e in first.evaluations)
    only_one = stub.ListEvaluations(
        es.ListEvaluationsRequest(workflow_name="support", workflow_version="1"),
        timeout=CALL_TIMEOUT,
    )
    assert [e.id for e in only_one.evaluations] == [made[0].id]
    shown = stub.GetEvaluation(es.GetEvaluationRequest(id=made[0].id), timeout=CALL_TIMEOUT)
    assert shown.evaluation.case_results[0].output_json == '{"category": "billing"}'


def test_a_repeated_request_id_records_once(control_plane: ControlPlane, database_url: str) -> None:
    register(control_plane, ("1", False))
    request = es.RecordEvaluationRequest(
        evaluation=evaluation("1", passed=True), request_id="ci-job-7"
    )
    stub = evaluations_stub(control_plane)
    first = stub.RecordEvaluation(request, timeout=CALL_TIMEOUT)
    counts = row_counts(database_url)
    again, call = stub.RecordEvaluation.with_call(request, timeout=CALL_TIMEOUT)
    assert again == first
    assert ("surefoot-repeated", "true") in call.trailing_metadata()
    assert row_counts(database_url) == counts
    # The same id for another evaluation is refused, and writes nothing either.
    other = es.RecordEvaluationRequest(
        evaluation=evaluation("1", passed=False), request_id="ci-job-7"
    )
    assert refused(stub.RecordEvaluation, other).code() == grpc.StatusCode.ALREADY_EXISTS
    assert row_counts(database_url) == counts


def test_an_eval_set_is_put_once_and_read_back(control_plane: ControlPlane) -> None:
    register(control_plane, ("1", False))
    stub = evaluations_stub(control_plane)
    put = es.PutEvalSetRequest(workflow_name="support", workflow_version="1", eval_set=SET_TEXT)
    first = stub.PutEvalSet(put, timeout=CALL_TIMEOUT)
    again = stub.PutEvalSet(put, timeout=CALL_TIMEOUT)
    assert (first.created, again.created, again.eval_set_hash) == (True, False, first.eval_set_hash)
    got = stub.GetEvalSet(es.GetEvalSetRequest(workflow_name="support"), timeout=CALL_TIMEOUT)
    assert (got.workflow_version, got.eval_set, got.eval_set_hash) == (
        "1",
        SET_TEXT,
        first.eval_set_hash,
    )


# (method, request, status, part of the message); each against support@1 with an eval set
# and support@2 (require_eval) without one.
REFUSALS: list[tuple[str, Any, grpc.StatusCode, str]] = [
    (
        "PutEvalSet",
        es.PutEvalSetRequest(workflow_name="support", workflow_version="9", eval_set=SET_TEXT),
        grpc.StatusCode.NOT_FOUND,
        "support@9 is not registered",
    ),
    (
        "PutEvalSet",
        es.PutEvalSetRequest(
            workflow_name="support", workflow_version="1", eval_set="cases: [{name: a}]"
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "cases[0].input: is required",
    ),
    (
        "PutEvalSet",
        es.PutEvalSetRequest(
            workflow_name="support",
            workflow_version="1",
            eval_set="cases: [{name: a, node: nope, input: 1}]",
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "'nope' is not an ai node",
    ),
    (
        "PutEvalSet",
        es.PutEvalSetRequest(
            workflow_name="support",
            workflow_version="1",
            eval_set="cases: [{name: other, input: 1}]",
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "already has an eval set",
    ),
    (
        "GetEvalSet",
        es.GetEvalSetRequest(workflow_name="support", workflow_version="2"),
        grpc.StatusCode.NOT_FOUND,
        "support@2 has no eval set",
    ),
    (
        "RecordEvaluation",
        es.RecordEvaluationRequest(evaluation=evaluation("9", passed=True)),
        grpc.StatusCode.NOT_FOUND,
        "support@9 is not registered",
    ),
    (
        "RecordEvaluation",
        es.RecordEvaluationRequest(evaluation=evaluation("2", passed=True, score=0.5)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "passed: cannot be true with a score below the threshold",
    ),
    (
        "RecordEvaluation",
        es.RecordEvaluationRequest(evaluation=evaluation("2", passed=True, kind="set")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "support@2 has no eval set",
    ),
    (
        "RecordEvaluation",
        es.RecordEvaluationRequest(
            evaluation=evaluation("1", passed=True, kind="set", eval_set_hash="ab")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "eval_set_hash: is not the hash",
    ),
    (
        "RecordEvaluation",
        es.RecordEvaluationRequest(evaluation=evaluation("2", passed=False, regressions=1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "need an against_version",
    ),
    (
        "GetEvaluation",
        es.GetEvaluationRequest(id="no-such-evaluation"),
        grpc.StatusCode.NOT_FOUND,
        "evaluation no-such-evaluation not found",
    ),
    (
        "ListEvaluations",
        es.ListEvaluationsRequest(workflow_name="support", page_token="%%%"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    ),
]


def test_refusals_are_precise_and_write_nothing(
    control_plane: ControlPlane, database_url: str
) -> None:
    register(control_plane, ("1", False), ("2", True))
    stub = evaluations_stub(control_plane)
    stub.PutEvalSet(
        es.PutEvalSetRequest(workflow_name="support", workflow_version="1", eval_set=SET_TEXT),
        timeout=CALL_TIMEOUT,
    )
    before = row_counts(database_url)

    for method, request, code, message in REFUSALS:
        error = refused(getattr(stub, method), request)
        assert (error.code(), method) == (code, method), error.details()
        assert message in (error.details() or ""), (method, error.details())
    assert row_counts(database_url) == before
    assert latest_version(control_plane) == "1"


def test_a_viewer_reads_evaluations_but_may_not_record_or_attach_a_set(
    processes: ProcessRegistry, database_url: str, tmp_path: Path
) -> None:
    server = SecuredControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    try:
        channel = grpc.insecure_channel(server.address)
        workflows = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
        definition = definition_from_dict(support("1", "m", BASE_URL, require_eval=True))
        workflows.RegisterDefinition(
            ws.RegisterDefinitionRequest(namespace=TEAM_A, definition=definition),
            timeout=CALL_TIMEOUT,
            metadata=bearer(ROOT),
        )
        stub = evaluation_service_pb2_grpc.EvaluationServiceStub(channel)
        given = evaluation("1", passed=True, namespace=TEAM_A)
        put = es.PutEvalSetRequest(
            namespace=TEAM_A, workflow_name="support", workflow_version="1", eval_set=SET_TEXT
        )
        before = row_counts(database_url)

        denied = [
            refused(
                stub.RecordEvaluation,
                es.RecordEvaluationRequest(evaluation=given),
                bearer(A_VIEWER),
            ),
            refused(stub.PutEvalSet, put, bearer(A_VIEWER)),
        ]
        assert [e.code() for e in denied] == [grpc.StatusCode.PERMISSION_DENIED] * 2
        # No token, a wrong one, and team A's operator recording into team B: refused too.
        record = es.RecordEvaluationRequest(evaluation=given)
        strangers = [
            refused(stub.RecordEvaluation, record),
            refused(stub.RecordEvaluation, record, bearer("not-a-token")),
            refused(stub.PutEvalSet, put),
        ]
        assert [e.code() for e in strangers] == [grpc.StatusCode.UNAUTHENTICATED] * 3
        other_team = es.RecordEvaluationRequest(evaluation=evaluation("1", True, namespace=TEAM_B))
        assert refused(stub.RecordEvaluation, other_team, bearer(A_OPERATOR)).code() in (
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.NOT_FOUND,
        )
        assert row_counts(database_url) == before

        recorded = stub.RecordEvaluation(
            es.RecordEvaluationRequest(evaluation=given),
            timeout=CALL_TIMEOUT,
            metadata=bearer(A_OPERATOR),
        ).evaluation
        assert recorded.recorded_by == "otto"
        listed = stub.ListEvaluations(
            es.ListEvaluationsRequest(namespace=TEAM_A, workflow_name="support"),
            timeout=CALL_TIMEOUT,
            metadata=bearer(A_VIEWER),
        )
        assert [e.id for e in listed.evaluations] == [recorded.id]
        # Another namespace's evaluation is not even found.
        elsewhere = refused(
            stub.GetEvaluation,
            es.GetEvaluationRequest(namespace="default", id=recorded.id),
            bearer(A_VIEWER),
        )
        assert elsewhere.code() == grpc.StatusCode.NOT_FOUND
        channel.close()
    finally:
        server.stop()
