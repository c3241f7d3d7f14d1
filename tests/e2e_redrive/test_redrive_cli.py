"""The incident from the terminal: `deadletters groups` shows the outage as one row with its
signature and idempotency, `deadletters redrive --dry-run` says how many and how long,
`--wait` follows the operation to its end (exit 0, or 4 when some failed again), and
`operations list|show|watch|cancel` read and stop it."""

from __future__ import annotations

import json
import re

import pytest

from controlplane.cli import output
from controlplane.cli.main import main
from tests.e2e_redrive.outage_api import OutagePaymentApi
from tests.e2e_redrive.redrive_support import (
    REDRIVE_STEPS,
    SIGNATURE,
    customer,
    dead_letter_outage,
    groups,
    wait_statuses,
)
from tests.support.processes import ControlPlane, StartWorker

Capture = pytest.CaptureFixture[str]


def cli(control_plane: ControlPlane, capsys: Capture, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--address", control_plane.address])
    out, err = capsys.readouterr()
    return code, out, err


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_an_incident_grouped_dry_run_redriven_and_followed_from_the_cli(
    control_plane: ControlPlane,
    worker: StartWorker,
    payment_api: OutagePaymentApi,
    capsys: Capture,
) -> None:
    stub = control_plane.stub
    worker(REDRIVE_STEPS)
    runs = dead_letter_outage(stub, payment_api, "cli-outage", 6)
    [group] = groups(stub)

    code, out, err = cli(control_plane, capsys, "deadletters", "groups")
    assert (code, err) == (0, "")
    header, row = out.splitlines()
    assert cells(header) == [
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
    assert cells(row) == [
        "6",
        "cli-outage@1",
        "redrive-charge@1",
        "key",
        "PaymentUnavailable",
        SIGNATURE,
        output.timestamp(group.oldest),
        output.timestamp(group.newest),
        group.sample_run_id,
    ]

    code, out, err = cli(
        control_plane, capsys, "deadletters", "redrive", "--workflow", "cli-outage", "--dry-run",
        "--rate", "3",
    )  # fmt: skip
    assert (code, err) == (0, "")
    summary, table_header, table_row = out.splitlines()
    assert summary == "6 dead letters match; 6 to redrive at 3/s: about 2.0s"
    assert cells(table_row) == ["redrive-charge@1", "key", "6", "yes"]
    assert cli(control_plane, capsys, "operations", "list")[1] == "no operations\n"

    payment_api.recover({customer(0)})
    code, out, err = cli(
        control_plane, capsys, "deadletters", "redrive", "--signature", SIGNATURE, "--rate", "50",
        "--comment", "provider is back", "--request-id", "inc-7", "--wait",
    )  # fmt: skip
    # One customer still fails: the operation ends with an item that failed again, exit 4.
    assert (code, err) == (4, ""), out
    lines = out.splitlines()
    assert lines[0] == "6 dead letters match; 6 to redrive at 50/s: about 0.1s"
    started = re.search(r"^redrive (\S+) started$", out, re.MULTILINE)
    assert started, out
    operation_id = started[1]
    assert lines[-4] == "completed: 6/6 retried, 5 succeeded, 1 failed again, 0 running, 0 pending"
    assert lines[-3] == "failed again (back in the dead letters):"
    failing_run = next(r for r, c in runs.items() if c == customer(0))
    assert cells(lines[-2]) == ["COUNT", "ERROR TYPE", "SIGNATURE", "RUNS"]
    assert cells(lines[-1]) == ["1", "PaymentUnavailable", SIGNATURE, failing_run]

    # The same request id: the first operation, not another one.
    code, out, _ = cli(
        control_plane, capsys, "deadletters", "redrive", "--signature", SIGNATURE,
        "--request-id", "inc-7",
    )  # fmt: skip
    assert code == 0 and f"redrive {operation_id} already started" in out.splitlines()

    code, out, _ = cli(control_plane, capsys, "operations", "list")
    header, row = out.splitlines()
    assert cells(row)[:8] == [operation_id, "redrive", "COMPLETED", "50/s", "6", "6", "5", "1"]
    code, out, _ = cli(
        control_plane, capsys, "operations", "show", operation_id, "--items", "failed_again"
    )
    assert code == 0
    fields = dict(line.split(": ", 1) for line in out.splitlines() if re.match(r"^[a-z ]+: ", line))
    assert fields["comment"].strip() == "provider is back"
    assert fields["succeeded"].strip() == "5" and fields["failed again"].strip() == "1"
    assert fields["selection"].strip() == f"signature={SIGNATURE}"
    item = cells(out.splitlines()[-1])
    assert item[1:4] == [failing_run, "charge", "FAILED_AGAIN"]
    assert item[5].startswith("PaymentUnavailable: charge req_") and customer(0) in item[5]
    code, out, _ = cli(control_plane, capsys, "operations", "show", operation_id, "--json")
    document = json.loads(out)["operation"]
    assert document["progress"]["succeeded"] == "5" and document["done"] is True
    code, out, _ = cli(control_plane, capsys, "operations", "watch", operation_id)
    assert code == 4 and out.splitlines()[0].startswith("completed: 6/6 retried")
    code, out, err = cli(control_plane, capsys, "operations", "cancel", operation_id)
    assert (code, out) == (1, "") and err.startswith("error: FAILED_PRECONDITION: ")

    wait_statuses(stub, [r for r, c in runs.items() if c != customer(0)], "COMPLETED")


def test_redrive_refuses_bad_options_without_connecting(capsys: Capture) -> None:
    # Nothing listens at the address: exit 2 rather than 3 proves nothing was sent.
    address = "127.0.0.1:1"
    for rate, message in (
        ("0", "must be between 0.001 and 10000"),
        ("fast", "'fast' is not a number"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(
                ["deadletters", "redrive", "--workflow", "w", "--rate", rate, "--address", address]
            )
        assert exited.value.code == 2
        assert f"argument --rate: {message}" in capsys.readouterr().err
    assert main(["deadletters", "redrive", "--comment", "all", "--address", address]) == 2
    assert capsys.readouterr().err.startswith("error: redrive needs --workflow")
