"""`surefoot deadletters ...` against a real control plane: an operator lists the dead
letters, sees the incident as groups, retries one with corrected input, skips another,
redrives the rest, and the runs complete.

The worker is stopped before the decisions, so that what each command prints (where the
step is now) is what it did, not what a quick worker did next; a new worker then finishes
the runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from controlplane.cli import output
from controlplane.cli.main import main
from tests.e2e_triage.triage_support import (
    CARD_DECLINED_MESSAGE,
    DECLINED,
    FLAKY,
    Capture,
    cells,
    cli,
    dead_letters,
    one_attempt_b,
    snapshot,
    wait_all,
)
from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker, free_port
from tests.support.runs import (
    events_of,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
LIST_HEADER = ["RUN", "NODE", "WORKFLOW", "STEP TYPE", "ERROR", "ATTEMPTS", "SINCE"]
GROUPS_HEADER = [
    "COUNT",
    "WORKFLOW",
    "STEP TYPE",
    "IDEMPOTENCY",
    "ERROR TYPE",
    "SIGNATURE",
    "FIRST SEEN",
    "LAST SEEN",
    "SAMPLE RUN",
]


def test_list_groups_retry_skip_and_redrive_from_the_cli(
    control_plane: ControlPlane,
    worker: StartWorker,
    execution_log: ExecutionLog,
    capsys: Capture,
    tmp_path: Path,
) -> None:
    stub = control_plane.stub
    register(stub, one_attempt_b("cli-triage"))
    first_worker = worker()
    to_retry = start_run(stub, "cli-triage", DECLINED)
    wait_for_status(stub, to_retry, "NEEDS_ATTENTION")
    to_skip = start_run(stub, "cli-triage", DECLINED)
    wait_for_status(stub, to_skip, "NEEDS_ATTENTION")
    flaky = start_run(stub, "cli-triage", FLAKY)
    wait_for_status(stub, flaky, "NEEDS_ATTENTION")
    first_worker.kill()
    listed = {d.run_id: d for d in dead_letters(stub)}

    # list: oldest first, one row per dead letter.
    code, out, err = cli(control_plane, capsys, "deadletters", "list")
    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert cells(header) == LIST_HEADER
    assert [cells(row)[:6] for row in rows] == [
        [
            to_retry,
            "b",
            "cli-triage@1",
            "e2e-work-sync",
            f"CardDeclined: {CARD_DECLINED_MESSAGE}",
            "1",
        ],
        [
            to_skip,
            "b",
            "cli-triage@1",
            "e2e-work-sync",
            f"CardDeclined: {CARD_DECLINED_MESSAGE}",
            "1",
        ],
        [
            flaky,
            "b",
            "cli-triage@1",
            "e2e-work-sync",
            "FlakyDependency: b attempt 1: the dependency is down",
            "1",
        ],
    ]
    for row, run_id in zip(rows, (to_retry, to_skip, flaky), strict=True):
        assert cells(row)[6] == output.timestamp(listed[run_id].dead_lettered_at)
        assert TIMESTAMP.match(cells(row)[6])

    # Paging: the token goes to stderr, so that stdout is only the table.
    code, out, err = cli(control_plane, capsys, "deadletters", "list", "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 3
    token = re.fullmatch(r"next page: --page-token (\S+)\n", err)
    assert token, err
    code, out, err = cli(
        control_plane, capsys, "deadletters", "list", "--limit", "2", "--page-token", token[1]
    )
    assert (code, err) == (0, "")
    assert [cells(row)[0] for row in out.splitlines()[1:]] == [flaky]

    code, out, _ = cli(
        control_plane, capsys, "deadletters", "list", "--error-type", "FlakyDependency"
    )
    assert [cells(row)[0] for row in out.splitlines()[1:]] == [flaky]
    code, out, _ = cli(control_plane, capsys, "deadletters", "list", "--workflow", "other")
    assert (code, out) == (0, "no dead letters\n")
    code, out, _ = cli(control_plane, capsys, "deadletters", "list", "--json")
    document = json.loads(out)
    assert [d["run_id"] for d in document["dead_letters"]] == [to_retry, to_skip, flaky]
    assert document["dead_letters"][2] | {"dead_lettered_at": "-"} == {
        "run_id": flaky,
        "node_id": "b",
        "workflow_name": "cli-triage",
        "workflow_version": "1",
        "step_type": "e2e-work-sync",
        "error_type": "FlakyDependency",
        "error_message": "b attempt 1: the dependency is down",
        "attempts": 1,
        "dead_lettered_at": "-",
        "compensation": False,
        "step_version": "1",
        "idempotency": "key",
        "error_signature": "b attempt <n>: the dependency is down",
    }
    assert document["next_page_token"] == ""

    # groups: the incident view, largest first, with the newest one as the sample.
    code, out, err = cli(control_plane, capsys, "deadletters", "groups")
    assert (code, err) == (0, "")
    header, declined_row, flaky_row = out.splitlines()
    assert cells(header) == GROUPS_HEADER
    declined = [listed[to_retry].dead_lettered_at, listed[to_skip].dead_lettered_at]
    # The two were dead-lettered one after the other, so the sample is the second one.
    assert cells(declined_row) == [
        "2",
        "cli-triage@1",
        "e2e-work-sync@1",
        "key",
        "CardDeclined",
        "b: card <n> declined",
        output.timestamp(min(declined, key=lambda t: t.ToNanoseconds())),
        output.timestamp(max(declined, key=lambda t: t.ToNanoseconds())),
        to_skip,
    ]
    flaky_since = output.timestamp(listed[flaky].dead_lettered_at)
    assert cells(flaky_row) == [
        "1",
        "cli-triage@1",
        "e2e-work-sync@1",
        "key",
        "FlakyDependency",
        "b attempt <n>: the dependency is down",
        flaky_since,
        flaky_since,
        flaky,
    ]
    code, out, _ = cli(control_plane, capsys, "deadletters", "groups", "--json")
    assert [(g["error_type"], g["count"]) for g in json.loads(out)["groups"]] == [
        ("CardDeclined", "2"),  # int64 is a string in the protobuf JSON mapping
        ("FlakyDependency", "1"),
    ]

    # Bad local input is refused before anything is sent.
    before = snapshot(stub, to_retry)
    code, out, err = cli(
        control_plane, capsys, "deadletters", "retry", to_retry, "b", "--input", "{not json"
    )
    assert (code, out) == (2, "")
    assert err.startswith("error: --input is not valid JSON: Expecting property name")
    assert len(err.splitlines()) == 1
    code, _, err = cli(control_plane, capsys, "deadletters", "redrive")
    assert code == 2
    assert err == (
        "error: redrive needs --workflow, --step-type, --error-type, --signature (or another "
        "filter) or --run: redriving every dead letter is refused\n"
    )
    assert snapshot(stub, to_retry) == before

    # retry with corrected input, skip with an output from a file, redrive the rest.
    code, out, err = cli(
        control_plane,
        capsys,
        "deadletters",
        "retry",
        to_retry,
        "b",
        "--input",
        '{"trail": ["a"]}',
        "--comment",
        "card replaced",
        "--forget-connector-outcome",
    )
    assert (code, out, err) == (0, f"retried b of {to_retry}: attempt 2 scheduled\n", "")
    given = tmp_path / "output.json"
    given.write_text('{"trail": ["a", "b-by-hand"]}')
    code, out, err = cli(
        control_plane,
        capsys,
        "deadletters",
        "skip",
        to_skip,
        "b",
        "--output-file",
        str(given),
        "--comment",
        "charged by phone",
    )
    assert (code, out, err) == (0, f"skipped b of {to_skip}: run RUNNING\n", "")
    code, out, err = cli(
        control_plane,
        capsys,
        "deadletters",
        "redrive",
        "--error-type",
        "FlakyDependency",
        "--comment",
        "dependency is back",
    )
    # A durable operation: the command says what it started; the retry follows at its rate.
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "1 dead letters match; 1 to redrive at 20/s: about 0.1s"
    assert re.search(r"^redrive \S+ started$", out, re.MULTILINE), out
    assert_eventually(
        lambda: cli(control_plane, capsys, "deadletters", "list")[1] == "no dead letters\n",
        message="the redrive retried the flaky dead letter",
    )
    code, out, _ = cli(control_plane, capsys, "deadletters", "groups")
    assert out == "no dead letters\n"

    worker()
    wait_all(stub, [to_retry, to_skip, flaky], "COMPLETED")
    assert payload_value(wait_for_status(stub, to_retry, "COMPLETED").output)["trail"] == [
        "a",
        "b",
        "c",
    ]
    assert payload_value(wait_for_status(stub, to_skip, "COMPLETED").output)["trail"] == [
        "a",
        "b-by-hand",
        "c",
    ]
    # The retried attempts kept the step's idempotency key: it is the same operation.
    for run_id in (to_retry, flaky):
        attempts = execution_log.started(run_id, "b")
        assert [e.attempt for e in attempts] == [1, 2]
        assert {e.idempotency_key for e in attempts} == {f"{run_id}:b"}
    assert [e.attempt for e in execution_log.started(to_skip, "b")] == [1]

    # Each decision is in the history, with the comment; this server knows no tokens, so
    # the principal names the anonymous caller's address.
    [retried] = events_of(history(stub, to_retry), "STEP_RETRIED", "b")
    assert retried.principal.startswith("anonymous@")
    assert retried.data["comment"] == "card replaced" and retried.data["input_edited"] is True
    assert retried.data["forget_connector_outcome"] is True
    [skipped] = events_of(history(stub, to_skip), "STEP_SKIPPED", "b")
    assert skipped.data["comment"] == "charged by phone"
    assert skipped.data["output"] == {"trail": ["a", "b-by-hand"]}
    [redriven] = events_of(history(stub, flaky), "STEP_RETRIED", "b")
    assert redriven.data["comment"] == "dependency is back"
    assert redriven.data["input_edited"] is False
    assert redriven.data["forget_connector_outcome"] is False

    # A run that no longer needs attention has nothing to retry: refused, exit 1.
    code, out, err = cli(control_plane, capsys, "deadletters", "retry", to_retry, "b")
    assert (code, out) == (1, "")
    assert err == (
        f"error: FAILED_PRECONDITION: run {to_retry} is COMPLETED: only a run that needs "
        "attention has a dead letter to retry or skip\n"
    )


def test_deadletters_commands_exit_3_when_no_control_plane_answers(capsys: Capture) -> None:
    address = f"127.0.0.1:{free_port()}"
    # A read and a decision; each waits half a second for a connection that never comes.
    for command in (["list"], ["retry", "run-1", "b"]):
        assert main(["deadletters", *command, "--address", address]) == 3, command
        assert capsys.readouterr().err == (
            f"error: cannot reach the control plane at {address} "
            "(is it running? set --address or SUREFOOT_ADDRESS)\n"
        )


def test_bad_local_input_exits_2_without_connecting(capsys: Capture, tmp_path: Path) -> None:
    # Nothing listens at the address: exit 2 rather than 3 proves nothing was sent.
    address = f"127.0.0.1:{free_port()}"
    missing = tmp_path / "missing.json"
    for command, message in (
        (["retry", "r", "b", "--input", "[1,"], "error: --input is not valid JSON: "),
        (
            ["retry", "r", "b", "--input-file", str(missing)],
            f"error: cannot read --input-file {missing}: ",
        ),
        (["skip", "r", "b", "--output", "nope"], "error: --output is not valid JSON: "),
        (["redrive", "--comment", "all of them"], "error: redrive needs --workflow"),
    ):
        assert main(["deadletters", *command, "--address", address]) == 2, command
        err = capsys.readouterr().err
        assert err.startswith(message) and len(err.splitlines()) == 1, err
