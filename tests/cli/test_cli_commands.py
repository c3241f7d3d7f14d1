"""What the client commands send and print, against a canned WorkflowService (see conftest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from surefoot.v1 import common_pb2, run_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict, load_definitions

from controlplane.cli.main import main

ORDERS_YAML = Path(__file__).parents[2] / "workers/surefoot_worker/examples/orders.yaml"
Capture = pytest.CaptureFixture[str]


def run(address: str, capsys: Capture, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--address", address])
    out, err = capsys.readouterr()
    return code, out, err


def test_apply_prints_one_line_per_definition(control_plane, capsys: Capture) -> None:
    address, service = control_plane
    code, out, err = run(address, capsys, "definitions", "apply", str(ORDERS_YAML))
    assert (code, err) == (0, "")
    assert out == "registered orders@1 (sha256:0123456789ab…)\n"
    (request,) = service.requests
    assert isinstance(request, ws.RegisterDefinitionRequest)
    assert request.namespace == "default"
    assert request.definition == load_definitions(str(ORDERS_YAML))[0]


def test_apply_of_registered_content_says_unchanged(control_plane, capsys, tmp_path) -> None:
    address, _ = control_plane
    path = tmp_path / "old.yaml"
    path.write_text("name: orders\nversion: old\n")
    assert run(address, capsys, "definitions", "apply", str(path))[1] == "unchanged orders@old\n"


def test_a_refused_definition_lists_the_field_violations(control_plane, capsys, tmp_path) -> None:
    address, _ = control_plane
    path = tmp_path / "two.yaml"
    path.write_text("- {name: good, version: '1'}\n- {name: refused, version: '1'}\n")
    code, out, err = run(address, capsys, "definitions", "apply", str(path))
    assert code == 1
    assert out == "registered good@1 (sha256:0123456789ab…)\n"
    assert err.splitlines() == [
        "error: refused@1: INVALID_ARGUMENT: definition refused",
        "  - definition.nodes[0].task.step_type: is empty",
    ]


def test_definitions_list_is_a_table(control_plane, capsys: Capture) -> None:
    address, _ = control_plane
    code, out, _ = run(address, capsys, "definitions", "list", "--name", "orders")
    assert code == 0
    assert out.splitlines() == [
        "NAME    VERSION  SEQ  HASH                 STATUS  IN FLIGHT",
        "orders  1        1    sha256:abababababab  active  3",
    ]


def test_definitions_show_prints_yaml_that_apply_accepts(control_plane, capsys) -> None:
    address, service = control_plane
    code, out, _ = run(address, capsys, "definitions", "show", "orders@1")
    assert code == 0
    assert out.startswith(f"# orders@1  sha256:{'cd' * 32}  sequence 2\n")
    assert definition_from_dict(yaml.safe_load(out)) == load_definitions(str(ORDERS_YAML))[0]
    assert service.requests == [
        ws.GetDefinitionRequest(namespace="default", name="orders", version="1")
    ]


def test_runs_start_prints_only_the_run_id(control_plane, capsys: Capture) -> None:
    address, service = control_plane
    code, out, err = run(
        address,
        capsys,
        "runs",
        "start",
        "orders@1",
        "--input",
        '{"a": [1, 2]}',
        "--request-id",
        "req-7",
        "--namespace",
        "shop",
    )
    assert (code, out, err) == (0, "run-1\n", "")
    (request,) = service.requests
    assert request == ws.StartRunRequest(
        namespace="shop",
        workflow_name="orders",
        workflow_version="1",
        input=common_pb2.Payload(encoding="json/plain", data=b'{"a":[1,2]}'),
        request_id="req-7",
    )


def test_runs_start_defaults_to_empty_input_and_a_fresh_request_id(control_plane, capsys) -> None:
    address, service = control_plane
    run(address, capsys, "runs", "start", "orders")
    run(address, capsys, "runs", "start", "orders")
    first, second = service.requests
    assert first.input.data == b"{}" and first.workflow_version == ""
    assert first.request_id and first.request_id != second.request_id


def test_runs_show_renders_steps_and_attempts(control_plane, capsys: Capture) -> None:
    address, _ = control_plane
    code, out, _ = run(address, capsys, "runs", "show", "run-1")
    assert code == 0
    assert out.splitlines() == [
        "run:          run-1",
        "workflow:     orders@1",
        "status:       WAITING",
        "created:      2026-09-21T14:13:20Z",
        "updated:      2026-09-21T14:13:21Z",
        "current node: charge",
        "waiting for:  retry at 2026-09-21T14:13:21Z",
        'input:        {"order_id":"A-1","amount":42}',
        "",
        "NODE     KIND      STEP TYPE      STATUS      ATTEMPT  IDEMPOTENCY KEY",
        "reserve  task      reserve-stock  COMPLETED   1        run-1/reserve",
        "    #1  w1          COMPLETED  2026-09-21T14:13:20Z",
        "charge   task      charge-card    RETRY_WAIT  2        run-1/charge",
        "    #1  host:1:abc  FAILED     2026-09-21T14:13:20Z  CardDeclined: insufficient funds",
        "    #2  -           LOST",
        "    next attempt at 2026-09-21T14:13:21Z",
        "approve  approval  -              WAITING     -        -",
        "    waiting for approval 'Ship it?' of 'approve' by group:managers",
    ]


def test_a_refused_request_is_one_line_with_the_code_and_details(control_plane, capsys) -> None:
    address, _ = control_plane
    code, out, err = run(address, capsys, "runs", "show", "123")
    assert (code, out, err) == (1, "", "error: NOT_FOUND: run 123 not found\n")


def test_runs_list_filters_and_points_to_the_next_page(control_plane, capsys: Capture) -> None:
    address, service = control_plane
    code, out, err = run(
        address,
        capsys,
        "runs",
        "list",
        "--workflow",
        "orders@1",
        "--status",
        "waiting",
        "failed",
        "--limit",
        "5",
        "--page-token",
        "t1",
    )
    assert code == 0
    assert out.splitlines() == [
        "ID     WORKFLOW  STATUS   CREATED               UPDATED",
        "run-1  orders@1  WAITING  2026-09-21T14:13:20Z  2026-09-21T14:13:21Z",
    ]
    assert err == "next page: --page-token tok-2\n"
    assert service.requests == [
        ws.ListRunsRequest(
            namespace="default",
            workflow_name="orders",
            workflow_version="1",
            statuses=[run_pb2.RUN_STATUS_WAITING, run_pb2.RUN_STATUS_FAILED],
            page_size=5,
            page_token="t1",
        )
    ]


def test_runs_history_is_one_line_per_event_with_data_cut_at_120(control_plane, capsys) -> None:
    address, _ = control_plane
    code, out, _ = run(address, capsys, "runs", "history", "run-1")
    assert code == 0
    header, started, failed = out.splitlines()
    assert header.split() == ["SEQ", "TIME", "TYPE", "NODE", "ATTEMPT", "PRINCIPAL", "DATA"]
    assert started.split() == ["1", "2026-09-21T14:13:20.000Z", "RUN_STARTED", "cli", '{"x":1}']
    data = failed.split()[-1]
    assert failed.split()[:6] == [
        "2",
        "2026-09-21T14:13:21.250Z",
        "ATTEMPT_FAILED",
        "charge",
        "1",
        "host:1:abc",
    ]
    assert len(data) == 120 and data.endswith("…") and data.startswith('{"error":"xxx')


def test_runs_history_after_a_sequence_number(control_plane, capsys: Capture) -> None:
    address, service = control_plane
    _, out, _ = run(address, capsys, "runs", "history", "run-1", "--after", "1")
    assert len(out.splitlines()) == 2
    assert service.requests[0].after_seq == 1


def test_runs_cancel(control_plane, capsys: Capture) -> None:
    address, service = control_plane
    code, out, _ = run(address, capsys, "runs", "cancel", "run-1", "--reason", "duplicate order")
    assert (code, out) == (0, "cancelled run run-1 (status CANCELLED)\n")
    assert service.requests[0].reason == "duplicate order"
    assert service.requests[0].compensate is False


def test_runs_cancel_compensate_abandons_the_run(control_plane, capsys: Capture) -> None:
    address, service = control_plane
    code, out, _ = run(address, capsys, "runs", "cancel", "run-1", "--compensate")
    assert (code, out) == (0, "compensating run run-1 (status COMPENSATING)\n")
    (sent,) = service.requests
    assert sent.request_id, "a write carries a request id"
    assert sent == ws.CancelRunRequest(
        namespace="default", run_id="run-1", compensate=True, request_id=sent.request_id
    )


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["definitions", "list"], "definitions"),
        (["definitions", "show", "orders"], "definition"),
        (["definitions", "apply", str(ORDERS_YAML)], "results"),
        (["runs", "start", "orders"], "run_id"),
        (["runs", "show", "run-1"], "run"),
        (["runs", "list"], "next_page_token"),
        (["runs", "history", "run-1"], "events"),
        (["runs", "cancel", "run-1"], "run"),
        (["approvals", "list"], "approvals"),
        (["approvals", "show", "run-1:approve"], "approval"),
        (["approvals", "approve", "run-1:approve", "--token", "alice-token"], "approval"),
        (["events", "send", "paid", "--key", "k"], "delivered_to"),
    ],
)
def test_json_output_is_one_document_with_proto_field_names(
    control_plane, capsys: Capture, args: list[str], key: str
) -> None:
    address, _ = control_plane
    code, out, _ = run(address, capsys, *args, "--json")
    assert code == 0
    document = json.loads(out)
    assert key in document


def test_json_run_uses_proto_names_and_full_enum_names(control_plane, capsys) -> None:
    address, _ = control_plane
    _, out, _ = run(address, capsys, "runs", "show", "run-1", "--json")
    run_doc = json.loads(out)["run"]
    assert run_doc["workflow_name"] == "orders"
    assert run_doc["status"] == "RUN_STATUS_WAITING"
    assert run_doc["steps"][1]["attempts"][0]["error"]["type"] == "CardDeclined"
