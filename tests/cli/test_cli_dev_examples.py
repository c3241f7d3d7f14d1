"""The examples `surefoot dev` ships: definitions and steps that fit together, and the tour.

The last test runs `surefoot dev` itself and walks the README's tour with the CLI: approve an
onboarding run, watch a failed one compensate, deliver an event to a trial run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from surefoot.v1 import common_pb2
from surefoot_worker import NonRetryableError, StepContext, load_steps
from surefoot_worker.authoring import definition_from_dict, definition_to_dict, load_definitions
from surefoot_worker.examples import onboarding

from controlplane.dev import EXAMPLE_DEFINITION_FILES, EXAMPLE_STEPS_MODULES
from controlplane.engine.validation import validate_definition
from tests.support.eventually import assert_eventually

EXAMPLES = Path(__file__).parents[2] / "workers/surefoot_worker/examples"
IDEMPOTENCY = {
    common_pb2.IDEMPOTENCY_KEY: "key",
    common_pb2.IDEMPOTENCY_NATURAL: "natural",
    common_pb2.IDEMPOTENCY_NONE: "none",
}


def _dev_steps() -> dict[str, str]:
    """Step type -> declared idempotency, for every step the dev worker runs."""
    return {s.name: s.idempotency for m in EXAMPLE_STEPS_MODULES for s in load_steps(m)}


@pytest.mark.parametrize("file_name", EXAMPLE_DEFINITION_FILES)
def test_each_example_is_valid_and_round_trips(file_name: str) -> None:
    (definition,) = load_definitions(str(EXAMPLES / file_name))
    # Registered before any worker connects, so it must stand without a step catalog.
    assert list(validate_definition(definition, lambda name, version: None)) == []
    assert definition_from_dict(definition_to_dict(definition)) == definition


@pytest.mark.parametrize("file_name", EXAMPLE_DEFINITION_FILES)
def test_the_dev_worker_implements_every_step_as_the_example_declares_it(file_name) -> None:
    steps = _dev_steps()
    (definition,) = load_definitions(str(EXAMPLES / file_name))
    for node in definition.nodes:
        if node.WhichOneof("kind") != "task":
            continue
        task = node.task
        assert IDEMPOTENCY[task.idempotency] == steps[task.step_type], node.id
        if task.compensate_step:
            declared = IDEMPOTENCY[task.compensate_idempotency]
            assert declared == steps[task.compensate_step], node.id


def test_every_compensation_of_onboarding_is_a_step_of_its_module() -> None:
    names = {s.name for s in load_steps("surefoot_worker.examples.onboarding")}
    (definition,) = load_definitions(str(EXAMPLES / "onboarding.yaml"))
    tasks = [n.task for n in definition.nodes if n.WhichOneof("kind") == "task"]
    assert [t.step_type for t in tasks] == [
        "create-customer",
        "charge-card",
        "provision-infrastructure",
        "send-welcome-email",
    ]
    assert [t.compensate_step for t in tasks] == [
        "mark-customer-cancelled",
        "refund-card",
        "deprovision-infrastructure",
        "send-snag-email",
    ]
    assert {t.step_type for t in tasks} | {t.compensate_step for t in tasks} <= names


def _context(key: str = "run-1:create", attempt: int = 1) -> StepContext:
    return StepContext(
        task_id="t",
        run_id="run-1",
        node_id="create",
        step_type="create-customer",
        step_version="1",
        attempt=attempt,
        idempotency_key=key,
        workflow_name="onboarding",
        namespace="default",
    )


def _call(handler: Callable[..., Any], ctx: StepContext, data: dict[str, Any]) -> Any:
    return asyncio.run(handler(ctx, data))


def test_a_retried_step_returns_the_ids_a_deduping_api_would() -> None:
    data = {"customer": "ACME Corp", "email": "ops@acme.test", "plan": "team"}
    first = _call(onboarding.create_customer, _context(attempt=1), data)
    again = _call(onboarding.create_customer, _context(attempt=2), data)
    other = _call(onboarding.create_customer, _context("run-2:create"), data)
    assert first == again
    assert first["customer_id"] != other["customer_id"]
    assert first["name"] == "ACME Corp" and first["plan"] == "team"
    refund = _call(onboarding.refund_card, _context(), {"charge_id": "ch_1", "amount": 49})
    assert refund["charge_id"] == "ch_1" and refund["amount"] == 49


def test_fail_provisioning_fails_without_retry() -> None:
    data = {"customer_id": "cus_1", "plan": "team", "fail_provisioning": True}
    with pytest.raises(NonRetryableError) as raised:
        _call(onboarding.provision_infrastructure, _context(), data)
    assert raised.value.type == "ProvisioningFailed"
    data["fail_provisioning"] = None  # what the definition passes when the input has no flag
    assert _call(onboarding.provision_infrastructure, _context(), data)["workspace_id"]


# --- the tour, against a real `surefoot dev` ---------------------------------------------------


@pytest.fixture
def dev_address(tmp_path: Path, unused_address: str) -> Iterator[str]:
    """`surefoot dev` on a free port and a fresh data directory, stopped with SIGINT after."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SUREFOOT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "controlplane.cli.main", "dev", "--listen", unused_address]
        + ["--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    try:
        assert process.stdout is not None
        banner = []
        for line in process.stdout:
            banner.append(line)
            if line.startswith("Ctrl-C stops it"):
                break
        else:
            pytest.fail("surefoot dev ended before its banner:\n" + "".join(banner))
        text = "".join(banner)
        assert "onboarding@1 (registered)" in text and "trial@1 (registered)" in text
        assert "events send card-added" in text
        yield unused_address
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_tour_runs_against_surefoot_dev(surefoot, dev_address: str) -> None:
    def cli(*args: str) -> str:
        result = surefoot(*args, SUREFOOT_ADDRESS=dev_address)
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout

    def run_doc(run_id: str) -> dict[str, Any]:
        return json.loads(cli("runs", "show", run_id, "--json"))["run"]

    def status_is(run_id: str, status: str) -> Callable[[], dict[str, Any]]:
        def check() -> dict[str, Any]:
            doc = run_doc(run_id)
            assert doc["status"] == f"RUN_STATUS_{status}", doc["status"]
            return doc

        return check

    customer = '{"customer": "ACME Corp", "email": "ops@acme.test", "plan": "team", "amount": 49'
    happy = cli("runs", "start", "onboarding", "--input", customer + "}").strip()
    failing = cli(
        "runs", "start", "onboarding", "--input", customer + ', "fail_provisioning": true}'
    ).strip()
    assert_eventually(status_is(happy, "WAITING"))
    assert_eventually(status_is(failing, "WAITING"))
    assert f"{happy}:approve" in cli("approvals", "list")

    # Dev mode: no token, and the decision is recorded as the OS user's.
    approved = cli("approvals", "approve", f"{happy}:approve", "--comment", "looks good")
    assert approved.startswith(f"approved {happy}:approve as ")
    assert_eventually(status_is(happy, "COMPLETED"))
    shown = cli("approvals", "show", f"{happy}:approve")
    assert '"customer": "ACME Corp"' in shown and "comment:   looks good" in shown

    cli("approvals", "approve", f"{failing}:approve")
    doc = assert_eventually(status_is(failing, "COMPENSATED"))
    compensations = [s["step_type"] for s in doc["steps"] if s.get("kind") == "compensation"]
    assert compensations == ["refund-card", "mark-customer-cancelled"]
    history = cli("runs", "history", failing)
    assert "COMPENSATION_STARTED" in history and "RUN_COMPENSATED" in history

    trial_input = '{"customer": "Initech", "email": "it@initech.test", "plan": "team"}'
    trial = cli("runs", "start", "trial", "--input", trial_input).strip()
    assert_eventually(status_is(trial, "WAITING"))
    sent = cli("events", "send", "card-added", "--key", "it@initech.test", "--payload", "{}")
    assert sent == f"{trial}\n"
    doc = assert_eventually(lambda: _sleeping(run_doc(trial)))
    cli("runs", "cancel", trial, "--compensate")
    doc = assert_eventually(status_is(trial, "COMPENSATED"))
    undone = {s["step_type"] for s in doc["steps"] if s.get("kind") == "compensation"}
    assert undone == {"send-snag-email", "deprovision-infrastructure", "mark-customer-cancelled"}


def _sleeping(doc: dict[str, Any]) -> dict[str, Any]:
    assert doc["current_node"] == "trial-period" and "sleep" in doc["waiting_for"], doc
    return doc
