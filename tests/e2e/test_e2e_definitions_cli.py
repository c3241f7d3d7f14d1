"""`surefoot definitions diff / deprecate / reinstate` against a real control plane."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from controlplane.cli.main import main
from tests.support.processes import ControlPlane

ORDERS_YAML = Path(__file__).parents[2] / "workers/surefoot_worker/examples/orders.yaml"
Capture = pytest.CaptureFixture[str]


def run(control_plane: ControlPlane, capsys: Capture, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--address", control_plane.address])
    out, err = capsys.readouterr()
    return code, out, err


def register_two_versions(control_plane: ControlPlane, capsys: Capture, tmp_path: Path) -> None:
    first = yaml.safe_load(ORDERS_YAML.read_text())
    second = copy.deepcopy(first)
    second["version"] = "2"
    second["description"] = "Reserve, check for fraud, charge, ship."
    reserve, charge, ship = second["nodes"]
    reserve["next"] = "fraud"
    charge["task"]["retry"] = dict(charge["task"]["retry"], max_attempts=8)
    fraud = {
        "id": "fraud",
        "next": "charge",
        "task": {"step_type": "fraud-score", "input": "input", "idempotency": "natural"},
    }
    second["nodes"] = [reserve, fraud, charge, ship]
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump({"definitions": [first, second]}))
    code, out, err = run(control_plane, capsys, "definitions", "apply", str(path))
    assert (code, err) == (0, ""), err
    assert out.count("registered") == 2


def test_diff_names_added_nodes_and_changed_fields(
    control_plane: ControlPlane, capsys: Capture, tmp_path: Path
) -> None:
    register_two_versions(control_plane, capsys, tmp_path)

    code, out, err = run(control_plane, capsys, "definitions", "diff", "orders@1", "2")

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "orders@1 -> orders@2",
        "  description: Reserve stock, charge the card, ship the order. -> Reserve, check for "
        "fraud, charge, ship.",
        "  ~ node reserve",
        "      next: charge -> fraud",
        "  + node fraud (task fraud-score)",
        "  ~ node charge",
        "      task.retry.max_attempts: 5 -> 8",
        "  (1 added, 0 removed, 2 changed)",
    ]

    code, out, _ = run(
        control_plane, capsys, "definitions", "diff", "orders@1", "orders@2", "--json"
    )
    document = json.loads(out)
    assert document["added"] == ["fraud"] and document["removed"] == []
    assert document["changed"]["charge"] == [
        {"path": "task.retry.max_attempts", "before": 5, "after": 8}
    ]

    code, out, _ = run(control_plane, capsys, "definitions", "diff", "orders@1", "2", "--unified")
    assert out.startswith("--- orders@1\n+++ orders@2\n")
    assert "+- id: fraud\n" in out

    code, out, _ = run(control_plane, capsys, "definitions", "diff", "orders@2", "orders@2")
    assert out == "orders@2 and orders@2 define the same workflow\n"


def test_deprecate_refuses_new_runs_and_reinstate_allows_them(
    control_plane: ControlPlane, capsys: Capture, tmp_path: Path
) -> None:
    register_two_versions(control_plane, capsys, tmp_path)
    code, run_id, _ = run(control_plane, capsys, "runs", "start", "orders@1", "--input", "{}")
    assert code == 0 and run_id.strip()

    code, out, err = run(
        control_plane, capsys, "definitions", "deprecate", "orders@1", "--reason", "fraud rule"
    )
    assert (code, err) == (0, "")
    assert out == "deprecated orders@1: 1 run in flight finishes on it\n"
    code, out, _ = run(control_plane, capsys, "definitions", "deprecate", "orders@1")
    assert out == "orders@1 was already deprecated: 1 run in flight\n"

    code, out, _ = run(control_plane, capsys, "definitions", "show", "orders@1")
    assert out.splitlines()[1].startswith("# deprecated by ")
    assert out.splitlines()[1].endswith(": fraud rule")
    code, out, _ = run(control_plane, capsys, "definitions", "list")
    [header, v1, v2] = out.splitlines()
    assert "STATUS" in header and "deprecated by " in v1 and v1.rstrip().endswith("1")
    assert "active" in v2

    code, out, err = run(control_plane, capsys, "runs", "start", "orders@1", "--input", "{}")
    assert (code, out) == (1, "")
    assert err.startswith("error: FAILED_PRECONDITION: orders@1 is deprecated by ")
    assert "fraud rule" in err and len(err.splitlines()) == 1
    code, out, _ = run(control_plane, capsys, "runs", "start", "orders", "--input", "{}")
    assert code == 0

    code, out, _ = run(control_plane, capsys, "definitions", "reinstate", "orders@1")
    assert out == "reinstated orders@1\n"
    code, _, _ = run(control_plane, capsys, "runs", "start", "orders@1", "--input", "{}")
    assert code == 0


BAD_REFERENCES = [
    (("deprecate", "orders"), 2, "expected NAME@VERSION"),
    (("deprecate", "orders@9"), 1, "NOT_FOUND"),
    (("reinstate", "orders@"), 2, "expected NAME@VERSION"),
    (("diff", "orders", "orders@1"), 2, "expected NAME@VERSION"),
    (("diff", "orders@1", "orders@9"), 1, "NOT_FOUND"),
]


def test_bad_references_are_one_line_errors_and_change_nothing(
    control_plane: ControlPlane, capsys: Capture, tmp_path: Path
) -> None:
    register_two_versions(control_plane, capsys, tmp_path)

    for args, code, message in BAD_REFERENCES:
        got, out, err = run(control_plane, capsys, "definitions", *args)
        assert (got, out) == (code, ""), args
        assert message in err and len(err.splitlines()) == 1, (args, err)

    _, out, _ = run(control_plane, capsys, "definitions", "list", "--json")
    assert [d.get("deprecated", False) for d in json.loads(out)["definitions"]] == [False, False]
