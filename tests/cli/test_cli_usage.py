"""The command line's contract without a server: help, usage errors, exit codes, one-line errors."""

from __future__ import annotations

import argparse

import pytest

from controlplane.cli.main import build_parser, main
from controlplane.cli.servers import mask_password

COMMANDS = [
    [],
    ["definitions"],
    ["definitions", "apply"],
    ["definitions", "list"],
    ["definitions", "show"],
    ["definitions", "diff"],
    ["definitions", "deprecate"],
    ["definitions", "reinstate"],
    ["runs"],
    ["runs", "start"],
    ["runs", "show"],
    ["runs", "why"],
    ["runs", "trace"],
    ["runs", "list"],
    ["runs", "history"],
    ["runs", "watch"],
    ["runs", "result"],
    ["runs", "cancel"],
    ["runs", "pause"],
    ["runs", "resume"],
    ["runs", "abandon"],
    ["runs", "at"],
    ["runs", "fork"],
    ["approvals"],
    ["approvals", "list"],
    ["approvals", "show"],
    ["approvals", "approve"],
    ["approvals", "reject"],
    ["deadletters"],
    ["deadletters", "list"],
    ["deadletters", "groups"],
    ["deadletters", "retry"],
    ["deadletters", "skip"],
    ["deadletters", "redrive"],
    ["operations"],
    ["operations", "list"],
    ["operations", "show"],
    ["operations", "watch"],
    ["operations", "cancel"],
    ["events"],
    ["events", "send"],
    ["eval"],
    ["stats"],
    ["audit"],
    ["audit", "verify"],
    ["credentials"],
    ["credentials", "create"],
    ["credentials", "list"],
    ["credentials", "revoke"],
    ["credentials", "hash"],
    ["server"],
    ["connectors"],
    ["connectors", "list"],
    ["connectors", "worker"],
    ["db"],
    ["db", "upgrade"],
    ["worker"],
    ["dev"],
    ["bench"],
    ["console"],
    ["completion"],
    ["workers"],
    ["workers", "list"],
]


def _command_paths(parser: argparse.ArgumentParser, prefix: list[str]) -> list[list[str]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _command_paths(sub, [*prefix, name])
    return paths


def test_the_help_tests_cover_every_command() -> None:
    assert sorted(_command_paths(build_parser(), [])) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "surefoot")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: surefoot {' '.join(command)}".rstrip())


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["runs"],
        ["definitions"],
        ["db"],
        ["approvals"],
        ["deadletters"],
        ["events"],
        ["connectors"],
    ],
)
def test_a_group_without_a_command_prints_its_help_and_exits_2(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(command) == 2
    assert "usage: surefoot" in capsys.readouterr().err


def test_client_commands_take_address_namespace_and_json() -> None:
    args = build_parser().parse_args(
        ["runs", "list", "--address", "h:1", "--namespace", "team-a", "--json"]
    )
    assert (args.address, args.namespace, args.json) == ("h:1", "team-a", True)


def test_address_and_namespace_default_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUREFOOT_ADDRESS", "cp.internal:7233")
    monkeypatch.setenv("SUREFOOT_NAMESPACE", "payments")
    args = build_parser().parse_args(["runs", "show", "r-1"])
    assert (args.address, args.namespace) == ("cp.internal:7233", "payments")


def test_run_status_filters_accept_short_names_in_any_case() -> None:
    args = build_parser().parse_args(
        ["runs", "list", "--status", "running", "NEEDS-ATTENTION", "--status", "RUN_STATUS_FAILED"]
    )
    assert args.status == [1, 3, 6]


def test_bad_input_json_exits_2_with_one_line(surefoot, unused_address: str) -> None:
    result = surefoot(
        "runs", "start", "orders", "--input", "{not json", "--address", unused_address
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: --input is not valid JSON: Expecting property name")


def test_unreadable_input_file_exits_2(surefoot, tmp_path) -> None:
    result = surefoot("runs", "start", "orders", "--input-file", str(tmp_path / "missing.json"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot read --input-file {tmp_path}/missing.json:")
    assert "Traceback" not in result.stderr


def test_input_and_input_file_are_exclusive(surefoot) -> None:
    result = surefoot("runs", "start", "orders", "--input", "{}", "--input-file", "x.json")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


def test_an_unreachable_control_plane_exits_3_with_one_line(surefoot, unused_address) -> None:
    result = surefoot("runs", "list", "--address", unused_address)
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == (
        f"error: cannot reach the control plane at {unused_address} "
        "(is it running? set --address or SUREFOOT_ADDRESS)\n"
    )


def test_unreachable_through_the_environment_variable(surefoot, unused_address) -> None:
    result = surefoot("runs", "start", "orders", SUREFOOT_ADDRESS=unused_address)
    assert result.returncode == 3
    assert unused_address in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_bad_definition_file_exits_2_before_connecting(surefoot, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: orders\n  version: 1\n")
    result = surefoot("definitions", "apply", str(bad))
    assert result.returncode == 2
    assert (
        result.stderr
        == f"error: {bad}:2:10: YAML syntax error: mapping values are not allowed here\n"
    )


def test_server_commands_need_a_database_url(surefoot) -> None:
    for command in (["server"], ["db", "upgrade"], ["bench"]):
        result = surefoot(*command)
        assert result.returncode == 2, command
        assert result.stderr == "error: --database-url is required (or set SUREFOOT_DATABASE_URL)\n"


def test_unknown_status_is_a_usage_error(surefoot) -> None:
    result = surefoot("runs", "list", "--status", "sleeping")
    assert result.returncode == 2
    assert "'sleeping' is not one of: running, waiting" in result.stderr


def test_unexpected_errors_are_one_line_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(_args: argparse.Namespace) -> int:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.delenv("SUREFOOT_DEBUG", raising=False)
    parser = build_parser()
    monkeypatch.setattr("controlplane.cli.main.build_parser", lambda: _with_func(parser, explode))
    assert main(["runs", "list"]) == 1
    assert capsys.readouterr().err == "error: RuntimeError: boom second line\n"
    monkeypatch.setenv("SUREFOOT_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["runs", "list"])


def test_ctrl_c_exits_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(_args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    parser = build_parser()
    monkeypatch.setattr(
        "controlplane.cli.main.build_parser", lambda: _with_func(parser, interrupted)
    )
    assert main(["runs", "list"]) == 130
    assert capsys.readouterr().err == ""


def _with_func(parser: argparse.ArgumentParser, func: object) -> argparse.ArgumentParser:
    """The same parser, but `runs list` runs `func`."""
    original = parser.parse_args

    def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
        args = original(argv)
        args.func = func
        return args

    # A narrower replacement for an overloaded method, patched on this one instance.
    parser.parse_args = parse_args  # type: ignore[method-assign, assignment]
    return parser


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://app:s3cr:et@db:5432/sf", "postgresql+psycopg://app:***@db:5432/sf"),
        ("postgresql://app@db/sf", "postgresql://app@db/sf"),
        ("sqlite+pysqlite:////tmp/x.db", "sqlite+pysqlite:////tmp/x.db"),
    ],
)
def test_database_passwords_are_masked(url: str, shown: str) -> None:
    assert mask_password(url) == shown
