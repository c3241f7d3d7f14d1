"""`approvals approve --output`: the output an AI node's review gives the node, against the
canned service (what the server does with it: tests/e2e_ai/test_ai_blocked_and_cli.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from surefoot.v1 import approval_pb2 as apb

from controlplane.cli.main import main

Capture = pytest.CaptureFixture[str]
OUTPUT = {"label": "billing", "confidence": 0.9}


def approve(address: str, capsys: Capture, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `surefoot approvals approve run-1:approve ARGS`."""
    try:
        code = main(["approvals", "approve", "run-1:approve", *args, "--address", address])
    except SystemExit as exited:  # argparse's refusals
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def sent_output(service: object) -> object:
    [request] = service.requests  # type: ignore[attr-defined]
    assert isinstance(request, apb.DecideApprovalRequest)
    assert request.HasField("output")
    return json.loads(request.output.data)


@pytest.mark.parametrize("source", ["inline", "at-path", "file", "stdin"])
def test_the_output_is_sent_as_json_from_text_a_file_or_stdin(
    control_plane, capsys: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    address, service = control_plane
    path = tmp_path / "output.json"
    path.write_text(json.dumps(OUTPUT))
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(OUTPUT)))
    given = {
        "inline": ["--output", json.dumps(OUTPUT)],
        "at-path": ["--output", f"@{path}"],
        "file": ["--output-file", str(path)],
        "stdin": ["--output-file", "-"],
    }[source]

    code, out, err = approve(address, capsys, *given, "--token", "alice-token")

    assert (code, out, err) == (0, "approved run-1:approve as alice\n", "")
    assert sent_output(service) == OUTPUT


def test_json_printing_still_works_beside_an_output(control_plane, capsys: Capture) -> None:
    address, service = control_plane
    code, out, _ = approve(
        address, capsys, "--output", json.dumps(OUTPUT), "--json", "--token", "alice-token"
    )
    assert code == 0
    assert json.loads(out)["approval"]["id"] == "run-1:approve"
    assert sent_output(service) == OUTPUT


def test_no_output_sends_none(control_plane, capsys: Capture) -> None:
    address, service = control_plane
    code, _, _ = approve(address, capsys, "--token", "alice-token")
    assert code == 0
    [request] = service.requests
    assert not request.HasField("output")


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (["--output", "{'label': 1}"], "error: --output is not valid JSON: "),
        (["--output", "@/nonexistent/output.json"], "error: cannot read --output @/nonexistent/"),
        (["--output-file", "/nonexistent/output.json"], "error: cannot read --output-file "),
        (["--output", "{}", "--output-file", "x.json"], "not allowed with argument"),
    ],
)
def test_bad_output_is_exit_2_in_one_line_and_sends_nothing(
    control_plane, capsys: Capture, given: list[str], words: str
) -> None:
    address, service = control_plane
    code, out, err = approve(address, capsys, *given, "--token", "alice-token")
    assert (code, out) == (2, "")
    assert words in err
    assert len(err.splitlines()) == 1 or err.startswith("usage: "), err
    assert service.requests == []


def test_a_rejection_takes_no_output(control_plane, capsys: Capture) -> None:
    address, service = control_plane
    with pytest.raises(SystemExit) as exited:
        main(["approvals", "reject", "run-1:approve", "--output", "{}", "--address", address])
    assert exited.value.code == 2
    assert service.requests == []
