"""The habits a Temporal CLI or kubectl user brings: -o json|yaml|table|wide, payloads as JSON,
--version, shell completion, --timeout and paging, against a real control plane process on
PostgreSQL (the CLI as a user runs it: a separate process, its exit code and its output)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.support.processes import ControlPlane, run_cli
from tests.support.runs import history, register, start_run
from tests.support.workflows import three_steps

pytestmark = pytest.mark.postgres

ORDER = {"order_id": "A-1", "amount": 42, "note": "café"}


@pytest.fixture
def plane(postgres_plane: ControlPlane) -> ControlPlane:
    return postgres_plane


def cli(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--address", plane.address)


def ok(plane: ControlPlane, *args: str) -> str:
    done = cli(plane, *args)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def header(table_output: str) -> list[str]:
    return table_output.splitlines()[0].split("  ")


def columns(table_output: str) -> list[str]:
    return [name.strip() for name in header(table_output) if name.strip()]


def test_every_format_of_a_run_and_payloads_as_json(plane: ControlPlane) -> None:
    register(plane.stub, three_steps("habits"))
    run_id = start_run(plane.stub, "habits", {"trail": ["in"], "order": ORDER})

    as_json = json.loads(ok(plane, "runs", "show", run_id, "-o", "json"))
    # The payload is its JSON value, not base64 bytes with an encoding tag.
    assert as_json["run"]["input"] == {"trail": ["in"], "order": ORDER}
    assert as_json["run"]["output"] is None
    assert json.loads(ok(plane, "runs", "show", run_id, "--json")) == as_json
    assert yaml.safe_load(ok(plane, "runs", "show", run_id, "-o", "yaml")) == as_json
    table = ok(plane, "runs", "show", run_id, "-o", "table")
    assert table.startswith("run:") and run_id in table and '"amount":42' in table

    events = json.loads(ok(plane, "runs", "history", run_id, "-o", "json"))["events"]
    assert events[0]["type"] == "EVENT_TYPE_RUN_STARTED"
    assert any(e["data"].get("input") == {"trail": ["in"], "order": ORDER} for e in events)
    from_yaml = yaml.safe_load(ok(plane, "runs", "history", run_id, "-o", "yaml"))
    assert from_yaml["events"] == events


def test_wide_adds_columns_to_lists(plane: ControlPlane) -> None:
    content_hash = register(plane.stub, three_steps("habits")).info.content_hash
    run_id = start_run(plane.stub, "habits", {"trail": []})

    narrow = ok(plane, "runs", "list")
    wide = ok(plane, "runs", "list", "-o", "wide")
    assert columns(narrow) == ["ID", "WORKFLOW", "STATUS", "CREATED", "UPDATED"]
    assert columns(wide) == [*columns(narrow), "CURRENT NODE", "WAITING FOR"]
    assert wide.splitlines()[1].split()[0] == run_id

    definitions = ok(plane, "definitions", "list", "-o", "wide")
    assert columns(definitions)[-2:] == ["REGISTERED", "FULL HASH"]
    assert definitions.splitlines()[1].endswith(content_hash)
    assert "REGISTERED" not in ok(plane, "definitions", "list")
    listed = yaml.safe_load(ok(plane, "definitions", "list", "-o", "yaml"))
    assert [(d["name"], d["version"]) for d in listed["definitions"]] == [("habits", "1")]


def test_a_bad_output_format_is_a_usage_error(plane: ControlPlane) -> None:
    done = cli(plane, "runs", "list", "-o", "xml")
    assert done.returncode == 2 and done.stdout == ""
    assert "argument -o/--output: invalid choice: 'xml'" in done.stderr


def test_runs_list_pages_with_limit_and_page_token(plane: ControlPlane) -> None:
    register(plane.stub, three_steps("habits"))
    started = {start_run(plane.stub, "habits", {"trail": [n]}) for n in range(3)}

    first = cli(plane, "runs", "list", "--limit", "2")
    assert first.returncode == 0, first.stderr
    count, next_page = first.stderr.splitlines()
    assert count == "2 of 3 runs"
    token = next_page.removeprefix("next page: --page-token ")
    assert token and token != next_page
    second = cli(plane, "runs", "list", "--limit", "2", "--page-token", token, "-o", "json")
    assert second.returncode == 0 and second.stderr == ""
    page_two = json.loads(second.stdout)
    assert page_two["next_page_token"] == ""
    seen = [line.split()[0] for line in first.stdout.splitlines()[1:]]
    seen += [r["id"] for r in page_two["runs"]]
    assert sorted(seen) == sorted(started)


def test_runs_history_pages_after_the_last_seq(plane: ControlPlane) -> None:
    register(plane.stub, three_steps("habits"))
    run_id = start_run(plane.stub, "habits", {"trail": []})
    expected = [e.seq for e in history(plane.stub, run_id)]
    assert len(expected) >= 2

    seqs: list[int] = []
    after = 0
    for _ in range(len(expected) + 1):
        done = cli(plane, "runs", "history", run_id, "--limit", "1", "--after", str(after))
        assert done.returncode == 0, done.stderr
        rows = done.stdout.splitlines()[1:]
        seqs += [int(row.split()[0]) for row in rows]
        if not done.stderr:
            break
        assert done.stderr == f"next page: --after {seqs[-1]}\n"
        after = seqs[-1]
    assert seqs == expected


def test_definitions_list_pages_on_the_client(plane: ControlPlane) -> None:
    for version in ("1", "2", "3"):
        register(plane.stub, three_steps("habits", version))

    pages: list[list[str]] = []
    token = ""
    while True:
        args = ["definitions", "list", "--limit", "2", "-o", "json"]
        done = cli(plane, *args, *(["--page-token", token] if token else []))
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        pages.append([d["version"] for d in document["definitions"]])
        token = document["next_page_token"]
        if not token:
            assert done.stderr == ""
            break
        assert done.stderr == f"next page: --page-token {token}\n"
    assert pages == [["1", "2"], ["3"]]
    refused = cli(plane, "definitions", "list", "--page-token", "abc")
    assert refused.returncode == 2 and "is not a page token" in refused.stderr


def test_version_is_the_installed_package_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"surefoot {importlib.metadata.version('surefoot')}\n"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_come_from_the_parser(shell: str) -> None:
    done = run_cli("completion", shell)
    assert done.returncode == 0, done.stderr
    script = done.stdout
    for word in ("runs", "deadletters", "operations", "workers", "completion", "--timeout"):
        assert word in script, (shell, word)


def test_bash_completion_completes_commands_options_and_formats(tmp_path: Path) -> None:
    script = tmp_path / "surefoot.bash"
    script.write_text(run_cli("completion", "bash").stdout)

    def complete(*words: str) -> list[str]:
        # What bash offers after TAB on `surefoot WORDS` (the last word being typed).
        program = (
            f"source {script}; COMP_WORDS=(surefoot {' '.join(words)}); "
            f"COMP_CWORD={len(words)}; _shtab_surefoot; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        )
        done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("ru") == ["runs"]
    assert complete("runs", "hi") == ["history"]
    assert complete("runs", "list", "-o", "''") == ["table", "wide", "json", "yaml"]
    assert complete("runs", "list", "--ti") == ["--timeout"]
    assert "bash" in complete("completion", "''")


def test_completion_refuses_an_unknown_shell() -> None:
    done = run_cli("completion", "powershell")
    assert done.returncode == 2 and "invalid choice: 'powershell'" in done.stderr


def test_timeout_against_a_listener_that_never_speaks_grpc() -> None:
    # Connections are accepted by the kernel's backlog and then nothing is ever said.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        done = run_cli("runs", "list", "--address", address, "--timeout", "1.5")
        elapsed = time.monotonic() - started
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr == (
        f"error: no answer from the control plane at {address} within 1.5 s (--timeout); "
        "a change may still have been made\n"
    )
    # Without --timeout the deadline is 10 s: the 1.5 s one is what ended it.
    assert elapsed < 9.0


def test_timeout_against_a_stopped_control_plane(plane: ControlPlane) -> None:
    register(plane.stub, three_steps("habits"))
    run_id = start_run(plane.stub, "habits", {"trail": []})
    assert plane.process is not None
    os.kill(plane.process.pid, signal.SIGSTOP)
    try:
        done = run_cli("runs", "show", run_id, "--address", plane.address, SUREFOOT_TIMEOUT="1")
    finally:
        os.kill(plane.process.pid, signal.SIGCONT)
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith(f"error: no answer from the control plane at {plane.address}")
    assert "within 1 s" in done.stderr and len(done.stderr.splitlines()) == 1
    # Once it runs again the same call answers.
    assert run_id in ok(plane, "runs", "show", run_id, "--timeout", "30")


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_a_bad_timeout_is_a_usage_error(value: str) -> None:
    done = run_cli("runs", "list", "--timeout", value)
    assert done.returncode == 2 and done.stdout == ""
    assert "--timeout" in done.stderr and "Traceback" not in done.stderr


def test_a_payload_that_is_not_json_says_so_in_machine_output() -> None:
    from surefoot.v1 import common_pb2, run_pb2

    from controlplane.cli import output

    run = run_pb2.Run(
        id="r",
        input=common_pb2.Payload(encoding="binary/plain", data=b"\x00\xff"),
        output=common_pb2.Payload(encoding="json/plain", data=b"{not json"),
        steps=[run_pb2.Step(node_id="a", attempts=[run_pb2.Attempt(number=1)])],
    )
    document = output.message_dict(run)
    assert document["input"] == {"encoding": "binary/plain", "base64": "AP8="}
    assert document["output"] == {
        "encoding": "json/plain",
        "base64": "e25vdCBqc29u",
        "error": "not valid JSON",
    }
    # Nested payloads (a step's attempt's heartbeat details) are decoded too: null when unset.
    assert document["steps"][0]["attempts"][0]["details"] is None
