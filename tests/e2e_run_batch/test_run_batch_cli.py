"""The bulk forms from the terminal: `runs pause --where ... --dry-run` shows the plan and
changes nothing; without --yes the plan is shown and a terminal asks (no terminal: not
started, exit 2); `--yes --wait` follows the operation to its end; `operations list|show`
show a run action; `runs resume|abandon|cancel` take the same selection options."""

from __future__ import annotations

import io
import json
import re

import pytest

from controlplane.cli.main import main
from tests.auth.auth_support import row_counts
from tests.e2e_run_batch.batch_support import start_held_runs, wait_statuses
from tests.support.processes import ControlPlane
from tests.support.runs import events_of, get_run, history

Capture = pytest.CaptureFixture[str]


def cli(control_plane: ControlPlane, capsys: Capture, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--address", control_plane.address])
    out, err = capsys.readouterr()
    return code, out, err


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


class _Terminal(io.StringIO):
    """Standard input as a terminal where the operator types `answer`."""

    def isatty(self) -> bool:
        return True


def test_pause_resume_abandon_and_cancel_by_filter_from_the_cli(
    control_plane: ControlPlane, capsys: Capture, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = control_plane.stub
    run_ids = start_held_runs(stub, "cli-held", 6)
    start_held_runs(stub, "cli-other", 2)

    before = row_counts(database_url)
    code, out, err = cli(
        control_plane, capsys, "runs", "pause", "--where", "workflow=cli-held,status=waiting",
        "--since", "1h", "--dry-run", "--rate", "3",
    )  # fmt: skip
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert lines[0] == "6 runs match; 6 to pause at 3/s: about 2.0s"
    assert cells(lines[1]) == ["WORKFLOW", "MATCHED", "TO PAUSE"]
    assert cells(lines[2]) == ["cli-held@1", "6", "6"]
    # Not confirmed: no terminal to ask on, or the operator says no.
    code, out, err = cli(control_plane, capsys, "runs", "pause", "--where", "workflow=cli-held")
    assert code == 2 and "confirm with --yes" in err and out.startswith("6 runs match")
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    code, out, err = cli(control_plane, capsys, "runs", "pause", "--where", "workflow=cli-held")
    assert code == 1 and "pause 6 runs? [y/N]" in err and "not started" in err
    assert row_counts(database_url) == before

    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    code, out, err = cli(
        control_plane, capsys, "runs", "pause", "--where", "workflow=cli-held",
        "--reason", "INC-9", "--rate", "100", "--wait",
    )  # fmt: skip
    assert code == 0, (out, err)
    started = re.search(r"^pause-runs (\S+) started$", out, re.MULTILINE)
    assert started, out
    operation_id = started[1]
    assert out.splitlines()[-1] == "completed: 6/6 paused, 0 pending"
    for run_id in run_ids:
        [paused] = events_of(history(stub, run_id), "RUN_PAUSED")
        assert (paused.data["reason"], paused.data["operation_id"]) == ("INC-9", operation_id)

    code, out, _ = cli(control_plane, capsys, "operations", "list")
    header, row = out.splitlines()
    assert cells(row)[:8] == [operation_id, "pause-runs", "COMPLETED", "100/s", "6", "6", "-", "-"]
    code, out, _ = cli(
        control_plane, capsys, "operations", "show", operation_id, "--items", "applied"
    )
    fields = dict(line.split(": ", 1) for line in out.splitlines() if re.match(r"^[a-z ]+: ", line))
    assert fields["selection"].strip() == "workflow=cli-held"
    assert fields["action"].strip() == "pause" and fields["paused"].strip() == "6"
    assert fields["comment"].strip() == "INC-9"
    assert cells(out.splitlines()[-1])[1:4] == [run_ids[-1], "cli-held@1", "APPLIED"]
    code, out, _ = cli(control_plane, capsys, "operations", "show", operation_id, "--json")
    document = json.loads(out)["operation"]
    assert document["action"]["type"] == "RUN_ACTION_TYPE_PAUSE"
    assert document["progress"]["applied"] == "6" and document["done"] is True

    # Resume them all; abandon two by id; cancel what is left (2 of 6 ended: not applicable
    # when selected, which is no failure of the operation: exit 0).
    code, out, err = cli(
        control_plane, capsys, "runs", "resume", "--where", "workflow=cli-held", "--yes",
        "--wait",
    )  # fmt: skip
    assert code == 0 and out.splitlines()[-1] == "completed: 6/6 resumed, 0 pending", out
    assert not any(get_run(stub, r).HasField("paused") for r in run_ids)
    code, out, err = cli(
        control_plane, capsys, "runs", "abandon", "--run", run_ids[0], "--run", run_ids[1],
        "--yes", "--wait", "--reason", "customer gave up",
    )  # fmt: skip
    assert code == 0, (out, err)
    wait_statuses(stub, run_ids[:2], "COMPENSATED")
    code, out, err = cli(
        control_plane, capsys, "runs", "cancel", "--where", "workflow=cli-held", "--yes",
        "--wait", "-o", "json",
    )  # fmt: skip
    assert code == 0, (out, err)
    last = json.loads(out.splitlines()[-1])
    assert last["progress"]["applied"] == "4" and last["progress"]["not_applicable"] == "2"
    wait_statuses(stub, run_ids[2:], "CANCELLED")


def test_bad_selections_are_refused_without_connecting(capsys: Capture) -> None:
    # Nothing listens at the address: exit 2 rather than 3 proves nothing was sent.
    address = "127.0.0.1:1"
    for args, message in (
        (["runs", "pause"], "give RUN_ID, or select runs"),
        (["runs", "pause", "r1", "--where", "workflow=w"], "either RUN_ID or a selection"),
        (["runs", "pause", "r1", "--dry-run"], "either RUN_ID or a selection"),
        (["runs", "resume", "--where", "flavour=x"], "expected KEY=VALUE with KEY one of"),
        (["runs", "cancel", "--where", "status=sleepy"], "status=sleepy: one of RUNNING"),
        (["runs", "abandon", "--where", "workflow=a,workflow=b"], "gives workflow twice"),
        (["runs", "pause", "--since", "yesterday"], "--since 'yesterday': an age"),
    ):
        assert main([*args, "--address", address]) == 2, args
        assert message in capsys.readouterr().err, args
    with pytest.raises(SystemExit) as exited:
        main(["runs", "pause", "--all", "--rate", "0", "--address", address])
    assert exited.value.code == 2
