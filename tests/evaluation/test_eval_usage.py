"""`surefoot eval`'s usage errors: exit 2 with one line, before anything is sent (the address
below has no server: reaching for it would be exit 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.cli.main import main

NOWHERE = "127.0.0.1:1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "support"], "error: expected NAME@VERSION, got 'support'"),
        (
            ["eval", "support@2", "--against", "orders@1"],
            "error: --against must be a version of support",
        ),
        (
            ["eval", "--recorded", "support@2", "--against", "support@1"],
            "error: --against compares eval sets",
        ),
        (
            ["eval", "--recorded", "support@2", "--since", "last week"],
            "error: --since: 'last week'",
        ),
        (["eval", "list"], "error: eval list needs NAME[@VERSION]"),
        (["eval", "show"], "error: eval show needs an evaluation ID"),
        (["eval", "support@2", "extra"], "error: unexpected argument 'extra'"),
    ],
)
def test_bad_arguments_are_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--address", NOWHERE]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(message), err
    assert len(err.splitlines()) == 1


def test_an_unreadable_secrets_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = tmp_path / "keys.yaml"
    secrets.write_text("- not a mapping\n")
    code = main(["eval", "support@2", "--secrets-file", str(secrets), "--address", NOWHERE])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: --secrets-file: ")


def test_the_exit_codes_are_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["eval", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "4  its score is below the eval set's threshold" in out
    assert "5  it is worse than --against" in out
