"""`surefoot eval` against a real control plane and a real scripted model server: a worse
version is gated, a better one passes and, with require_eval, becomes latest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.model_server import ModelServer, Reply
from tests.evaluation.eval_support import (
    GOOD,
    WORSE,
    cli,
    latest_version,
    listed,
    support,
    write_definitions,
)
from tests.support.processes import ControlPlane

Capture = pytest.CaptureFixture[str]
JUDGE_PROMPT = "Is {{ input.output.category }} right for {{ input.input.ticket }}?"


def test_apply_attaches_the_eval_set_beside_the_file(
    control_plane: ControlPlane, model_server: ModelServer, tmp_path: Path, capsys: Capture
) -> None:
    path = write_definitions(tmp_path, [support("1", "m-one", model_server.base_url)])
    code, out, err = cli(capsys, control_plane, "definitions", "apply", str(path))
    assert (code, err) == (0, "")
    assert out.splitlines()[1] == "attached eval set support.eval.yaml to support@1"
    # Applying the same files again changes nothing.
    code, out, _ = cli(capsys, control_plane, "definitions", "apply", str(path))
    assert out.splitlines() == [
        "unchanged support@1",
        "unchanged eval set support.eval.yaml to support@1",
    ]
    # An eval set is immutable: other content for the version is refused, naming the file.
    (tmp_path / "support.eval.yaml").write_text("cases: [{name: other, input: {ticket: x}}]\n")
    code, out, err = cli(capsys, control_plane, "definitions", "apply", str(path))
    assert code == 1
    assert err.startswith(
        "error: support@1: eval set support.eval.yaml: ALREADY_EXISTS: support@1 already has"
    )
    # A set that does not fit the version is refused and not kept.
    path = write_definitions(
        tmp_path,
        [support("2", "m-one", model_server.base_url)],
        {"cases": [{"name": "a", "node": "route", "input": 1}]},
    )
    code, out, err = cli(capsys, control_plane, "definitions", "apply", str(path), "-o", "json")
    assert code == 1
    assert "INVALID_ARGUMENT: eval_set: cases[0].node: 'route' is not an ai node" in err
    code, _, err = cli(capsys, control_plane, "eval", "support@2")
    assert (code, err) == (
        1,
        "error: NOT_FOUND: support@2 has no eval set (attach one with PutEvalSet)\n",
    )


def test_a_worse_version_is_gated_with_its_regression_listed(
    control_plane: ControlPlane, model_server: ModelServer, tmp_path: Path, capsys: Capture
) -> None:
    definitions = [
        support("1", "m-one", model_server.base_url),
        support("2", "m-two", model_server.base_url, require_eval=True),
    ]
    cli(
        capsys, control_plane, "definitions", "apply", str(write_definitions(tmp_path, definitions))
    )
    model_server.script("m-one", GOOD)
    model_server.script("m-two", WORSE)

    code, out, err = cli(capsys, control_plane, "eval", "support@2", "--against", "support@1")

    assert code == 5, out + err
    lines = out.splitlines()
    assert lines[0].split() == ["CASE", "NODE", "SCORE", "PASSED", "@1", "TOKENS", "MS", "FAILURE"]
    assert lines[1].split()[:5] == ["refund", "classify", "1.00", "yes", "yes"]
    assert lines[2].split()[:5] == ["outage", "classify", "0.50", "no", "yes"]
    assert 'exact: expected {"category": "technical"}' in lines[2]
    assert (
        "support@2: score 0.750 (threshold 0.75), 1/2 cases passed; @1 scored 1.000: FAILED" in out
    )
    assert "regressions (1):\n  outage (classify): exact: expected" in out
    # Each case went once through each version's model.
    assert [len(model_server.requests(m)) for m in ("m-one", "m-two")] == [2, 2]
    (recorded,) = listed(control_plane)
    assert (recorded.workflow_version, recorded.against_version, recorded.kind) == ("2", "1", "set")
    assert (recorded.passed, recorded.regressions, recorded.passed_cases) == (False, 1, 1)
    # A failed evaluation does not make the require_eval version latest.
    assert latest_version(control_plane) == "1"


def test_a_better_version_passes_and_then_becomes_latest(
    control_plane: ControlPlane, model_server: ModelServer, tmp_path: Path, capsys: Capture
) -> None:
    definitions = [
        support("1", "m-one", model_server.base_url),
        support("2", "m-two", model_server.base_url, require_eval=True),
    ]
    cli(
        capsys, control_plane, "definitions", "apply", str(write_definitions(tmp_path, definitions))
    )
    assert latest_version(control_plane) == "1"

    # Below the threshold: invalid JSON twice (a repair turn, then no output) for one case.
    model_server.script(
        "m-two", [Reply.json({"category": "billing"}), Reply.text("not json"), Reply.text("{")]
    )
    code, out, _ = cli(capsys, control_plane, "eval", "support@2")
    assert code == 4, out
    assert "AiOutputInvalid" in out
    assert latest_version(control_plane) == "1"

    model_server.script("m-two", GOOD)
    code, out, _ = cli(
        capsys, control_plane, "eval", "support@2", "-o", "json", "--comment", "ci 7"
    )
    assert code == 0, out
    document = json.loads(out)["evaluation"]
    assert (document["passed"], document["score"], document["comment"]) == (True, 1.0, "ci 7")
    assert latest_version(control_plane) == "2"

    # list: newest first, without cases; show: one with every case.
    code, out, _ = cli(capsys, control_plane, "eval", "list", "support@2")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [(r[0], r[1], r[3], r[5]) for r in rows] == [
        (document["id"], "2", "1.000", "yes"),
        (rows[1][0], "2", "0.500", "no"),
    ]
    code, out, _ = cli(capsys, control_plane, "eval", "show", document["id"])
    assert code == 0
    assert "workflow:    support@2" in out
    assert "comment:     ci 7" in out
    case_rows = [line.split()[:4] for line in out.split("\n\n", 1)[1].splitlines()[1:]]
    assert case_rows == [
        ["refund", "classify", "1.00", "yes"],
        ["outage", "classify", "1.00", "yes"],
    ]


def test_a_secret_never_appears_in_the_cli_output(
    control_plane: ControlPlane, model_server: ModelServer, tmp_path: Path, capsys: Capture
) -> None:
    secret = "sk-test-5ecret-value-42"
    definitions = [support("1", "m-key", model_server.base_url, secret="model_key")]
    cli(
        capsys, control_plane, "definitions", "apply", str(write_definitions(tmp_path, definitions))
    )
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text(f"model_key: {secret}\n")
    # An endpoint that echoes the key in its error, as some do for a rejected one.
    model_server.script(
        "m-key", [Reply.json({"category": "billing"}), Reply.error(401, f"bad key {secret}")]
    )

    code, out, err = cli(
        capsys, control_plane, "eval", "support@1", "--secrets-file", str(secrets_file)
    )
    code_json, out_json, err_json = cli(
        capsys, control_plane, "eval", "show", listed(control_plane)[0].id, "-o", "json"
    )

    assert code == 4, out + err
    assert "AiRequestRejected" in out
    # The key was sent to the endpoint, and is nowhere in what the CLI printed or recorded.
    assert model_server.requests("m-key")[0].headers["authorization"] == f"Bearer {secret}"
    for text in (out, err, out_json, err_json):
        assert secret not in text


def test_a_judge_grades_the_output_through_the_node_model(
    control_plane: ControlPlane, model_server: ModelServer, tmp_path: Path, capsys: Capture
) -> None:
    judged = {
        "threshold": 1,
        "cases": [
            {
                "name": name,
                "input": {"ticket": ticket},
                "assertions": [{"judge": {"prompt": JUDGE_PROMPT}}],
            }
            for name, ticket in (("refund", "money back"), ("outage", "site down"))
        ],
    }
    path = write_definitions(tmp_path, [support("1", "m-one", model_server.base_url)], judged)
    cli(capsys, control_plane, "definitions", "apply", str(path))
    # Each case: the node's reply, then the judge's verdict on it.
    model_server.script(
        "m-one",
        [
            Reply.json({"category": "billing"}),
            Reply.json({"pass": True, "reason": "a refund is billing"}),
            Reply.json({"category": "billing"}),
            Reply.json({"pass": False, "reason": "an outage is not a billing matter"}),
        ],
    )

    code, out, _ = cli(capsys, control_plane, "eval", "support@1")

    assert code == 4, out
    # Tokens count the node's call and the judge's (15 each, as the server reports them).
    assert out.splitlines()[2].split()[:5] == ["outage", "classify", "0.00", "no", "30"]
    assert "judge: an outage is not a billing matter" in out
    judge_prompts = [r.messages[-1]["content"] for r in model_server.requests("m-one")[1::2]]
    assert judge_prompts == ["Is billing right for money back?", "Is billing right for site down?"]
