"""`surefoot connectors list` and the worker command's refusals.

`list` runs once as a process, as a user runs it; the rest call the CLI's `main` in this
process, which is the same code without the interpreter's start-up time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from surefoot_connectors import all_connectors

from controlplane.cli.main import main
from tests.support.processes import run_cli


def test_list_shows_each_connector_and_its_input_fields() -> None:
    result = run_cli("connectors", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "IDEMPOTENCY", "SUMMARY"]
    for connector in all_connectors():
        (row,) = [line for line in lines if line.startswith(connector.name + " ")]
        assert row.split()[:3] == [connector.name, "1", "key"]
        assert f"{connector.name}@1 input:" in lines
    fields = {tuple(line.split()[:3]) for line in lines if line.startswith("  ")}
    assert ("url", "string", "yes") in fields
    assert ("method", "GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS", "no") in fields
    assert ("to", "array", "of") in fields  # `array of string`
    assert ("params", "object|array", "no") in fields


def test_list_json_is_the_registry_with_full_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connectors", "list", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in document["connectors"]] == [c.name for c in all_connectors()]
    for listed, connector in zip(document["connectors"], all_connectors(), strict=True):
        assert listed["input_schema"] == json.loads(json.dumps(connector.input_schema))
        assert listed["idempotency"] == "key" and listed["version"] == "1"
        assert listed["retry"]["max_attempts"] == connector.retry.max_attempts


def test_the_worker_refuses_what_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("api_token: 12345\n")
    worker = ["connectors", "worker", "--address", "127.0.0.1:1"]
    assert main([*worker, "--secrets-file", str(secrets)]) == 2
    error = capsys.readouterr().err
    assert "must be a string" in error and "12345" not in error

    assert main([*worker, "--token", "two words"]) == 2
    assert capsys.readouterr().err.startswith("error: --token must be printable ASCII")

    # The database is the control plane's alone: the worker has no option to name one.
    with pytest.raises(SystemExit) as exit_info:
        main([*worker, "--database-url", f"sqlite+pysqlite:///{tmp_path / 'x.db'}"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --database-url" in capsys.readouterr().err


def test_the_group_alone_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connectors"]) == 2
    assert "usage: surefoot connectors" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", [["connectors"], ["connectors", "list"], ["connectors", "worker"]]
)
def test_every_connectors_command_has_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: surefoot {' '.join(command)}")
