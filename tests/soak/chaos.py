"""The soak: runs that charge a payment stand-in while their processes are killed.

A client starts runs at a steady pace, each charging its own customer through the stand-in
(support/payment_api.py, which charges once per Idempotency-Key and counts every charge),
while workers are SIGKILLed every few seconds and started again, the control plane is
SIGKILLed now and then and restarted on its port, and (long mode) the private PostgreSQL is
restarted as after a crash. Then the chaos stops, the runs are given time to finish, and
the soak counts:

- runs lost: a run whose StartRun was answered but that the control plane no longer knows,
  or that completed without its charge;
- runs stuck: a run that did not complete in time after the chaos stopped;
- double charges: charges beyond the first for one run's customer.

All three must be 0, and so must duplicate runs (a retried StartRun that made a second
run) and answers other than UNAVAILABLE or DEADLINE_EXCEEDED while a process was down.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from surefoot.v1 import definition_pb2, run_pb2, workflow_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.support.payment_api import FakePaymentApi
from tests.support.private_postgres import PrivatePostgres
from tests.support.processes import ControlPlane, ProcessRegistry, WorkerProcess, start_worker
from tests.support.runs import events_of, history, json_payload, list_runs, register, status_name

SOAK_STEPS = Path(__file__).with_name("soak_steps.py")
WORKFLOW = "soak-checkout"
# A crash costs an attempt; under steady kills a step may lose several in a row, which must
# not dead-letter it: the soak is about what is lost, not about the retry budget.
RETRY = {"max_attempts": 50, "initial_interval_seconds": 0.1, "max_interval_seconds": 1}
# What a client sees while a process it talks to is down, and retries.
RETRIED_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
CALL_TIMEOUT = 5.0
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "COMPENSATED", "NEEDS_ATTENTION"}


@dataclass(frozen=True)
class SoakPlan:
    """How long and how hard: every interval in seconds, 0 for never."""

    chaos_seconds: float
    starts_per_second: float
    workers: int
    worker_kill_every: float
    control_plane_kill_every: float
    database_restart_every: float = 0.0
    drain_seconds: float = 30.0
    step_seconds: float = 0.2


@dataclass
class SoakReport:
    started: int = 0
    completed: int = 0
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    double_charges: int = 0
    duplicate_runs: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    worker_kills: int = 0
    control_plane_kills: int = 0
    database_restarts: int = 0
    # Evidence that the chaos bit: attempts taken back from a killed worker or control
    # plane, and charge requests the stand-in answered from a key it had already charged.
    attempts_lost: int = 0
    charges_replayed: int = 0

    @property
    def clean(self) -> bool:
        return not (
            self.lost or self.stuck or self.double_charges or self.duplicate_runs or self.unexpected
        )

    def summary(self) -> str:
        return (
            f"soak: runs lost {len(self.lost)}, stuck {len(self.stuck)}, "
            f"double charges {self.double_charges} "
            f"({self.started} runs started, {self.completed} completed; "
            f"{self.worker_kills} worker kills, {self.control_plane_kills} control-plane kills, "
            f"{self.database_restarts} database restarts; "
            f"{self.attempts_lost} attempts lost and run again, "
            f"{self.charges_replayed} charges asked again and replayed; "
            f"{len(self.duplicate_runs)} duplicate runs, {len(self.unexpected)} unexpected answers)"
        )

    def details(self) -> str:
        parts = [self.summary()]
        for name in ("lost", "stuck", "duplicate_runs", "unexpected"):
            items = getattr(self, name)
            if items:
                parts.append(f"{name}: {items[:20]}")
        return "\n".join(parts)


class SlowPaymentApi(FakePaymentApi):
    """The stand-in with a real provider's latency: a charge is made at once and answered
    `latency` seconds later, the window in which a kill leaves a customer charged and the
    step not yet checkpointed (the attempt run again must get the same charge back)."""

    def __init__(self, latency: float = 0.3) -> None:
        super().__init__()
        self.latency = latency

    def _charge(self, key: str, customer: str, amount: int) -> tuple[int, dict[str, Any], bool]:
        answer = super()._charge(key, customer, amount)
        threading.Event().wait(self.latency)  # the provider's own time, outside its lock
        return answer


def checkout() -> definition_pb2.WorkflowDefinition:
    """reserve → charge → ship; the charge goes through the stand-in with the step's key."""

    def task(
        node_id: str, step_type: str, input_expression: str, next_node: str | None
    ) -> dict[str, Any]:
        node: dict[str, Any] = {
            "id": node_id,
            "task": {
                "step_type": step_type,
                "step_version": "1",
                "input": input_expression,
                "idempotency": "key",
                "retry": RETRY,
            },
        }
        if next_node:
            node["next"] = next_node
        return node

    work = "{trail: `[]`, sleep_seconds: input.step_seconds}"
    payment = "{api: input.api, customer: input.customer, amount: input.amount}"
    return definition_from_dict(
        {
            "name": WORKFLOW,
            "version": "1",
            "nodes": [
                task("reserve", "e2e-work", work, "charge"),
                task("charge", "e2e-charge", payment, "ship"),
                task("ship", "e2e-work", work, None),
            ],
        }
    )


class Client:
    """A client that starts runs and retries what a down process could not answer."""

    def __init__(self, address: str) -> None:
        # Reconnect quickly after a control-plane restart (gRPC's default backoff grows
        # to two minutes).
        self._channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ],
        )
        self.stub = workflow_service_pb2_grpc.WorkflowServiceStub(self._channel)
        self.unexpected: list[str] = []

    def close(self) -> None:
        self._channel.close()

    def start(self, request: ws.StartRunRequest, until: float) -> str | None:
        """The run id once StartRun is answered, retrying with the same request id."""
        while time.monotonic() < until:
            try:
                return self.stub.StartRun(request, timeout=CALL_TIMEOUT, wait_for_ready=True).run_id
            except grpc.RpcError as error:
                self._note(error, f"StartRun {request.request_id}")
                pause(0.1)
        return None

    def get(self, run_id: str, until: float) -> run_pb2.Run | None:
        """The run, or None if the control plane says there is none."""
        while True:
            try:
                request = ws.GetRunRequest(run_id=run_id)
                return self.stub.GetRun(request, timeout=CALL_TIMEOUT, wait_for_ready=True).run
            except grpc.RpcError as error:
                if _code(error) == grpc.StatusCode.NOT_FOUND:
                    return None
                self._note(error, f"GetRun {run_id}")
                if time.monotonic() >= until:
                    raise
                pause(0.1)

    def _note(self, error: grpc.RpcError, what: str) -> None:
        code = _code(error)
        if code not in RETRIED_CODES:
            details = error.details() if isinstance(error, grpc.Call) else ""
            self.unexpected.append(f"{what}: {code.name if code else '?'} {details}")


def _code(error: grpc.RpcError) -> grpc.StatusCode | None:
    return error.code() if isinstance(error, grpc.Call) else None


def pause(seconds: float) -> None:
    """A client's pause between two tries (pacing, not waiting for a condition)."""
    threading.Event().wait(seconds)


class Soak:
    def __init__(
        self,
        plan: SoakPlan,
        registry: ProcessRegistry,
        control_plane: ControlPlane,
        payment_api: FakePaymentApi,
        cluster: PrivatePostgres | None = None,
    ) -> None:
        if plan.database_restart_every and cluster is None:
            raise ValueError("restarting the database needs a private cluster")
        self.plan = plan
        self._registry = registry
        self._control_plane = control_plane
        self._api = payment_api
        self._cluster = cluster
        self._workers: list[WorkerProcess] = []
        self._started: dict[str, str] = {}  # request id -> run id
        self._customers: dict[str, str] = {}  # request id -> customer
        self._stop = threading.Event()
        self.report = SoakReport()

    def run(self) -> SoakReport:
        register(self._control_plane.stub, checkout())
        for _ in range(self.plan.workers):
            self._workers.append(self._start_worker())
        client = Client(self._control_plane.address)
        starter = threading.Thread(target=self._start_runs, args=(client,), name="soak-starts")
        starter.start()
        try:
            self._chaos()
        finally:
            self._stop.set()
            starter.join(timeout=60)
        try:
            self._settle(client)
        finally:
            client.close()
        return self.report

    # -- load ---------------------------------------------------------------------------

    def _start_runs(self, client: Client) -> None:
        interval = 1.0 / self.plan.starts_per_second
        index = 0
        while not self._stop.is_set():
            index += 1
            request_id = f"soak-{index:05d}"
            customer = f"cus_{index:05d}"
            value = {
                "api": self._api.url,
                "customer": customer,
                "amount": 100 + index,
                "step_seconds": self.plan.step_seconds,
            }
            request = ws.StartRunRequest(
                workflow_name=WORKFLOW, input=json_payload(value), request_id=request_id
            )
            self._customers[request_id] = customer
            # A start in flight when the chaos ends is still seen through to its answer.
            run_id = client.start(request, time.monotonic() + 60)
            if run_id is None:
                client.unexpected.append(f"StartRun {request_id}: never answered")
            else:
                self._started[request_id] = run_id
            self._stop.wait(interval)

    # -- chaos --------------------------------------------------------------------------

    def _chaos(self) -> None:
        plan = self.plan
        begin = time.monotonic()
        end = begin + plan.chaos_seconds
        due = {
            "worker": begin + plan.worker_kill_every if plan.worker_kill_every else None,
            "control_plane": (
                begin + plan.control_plane_kill_every if plan.control_plane_kill_every else None
            ),
            "database": (
                begin + plan.database_restart_every if plan.database_restart_every else None
            ),
        }
        every = {
            "worker": plan.worker_kill_every,
            "control_plane": plan.control_plane_kill_every,
            "database": plan.database_restart_every,
        }
        while True:
            pending = {kind: at for kind, at in due.items() if at is not None and at < end}
            if not pending:
                break
            kind, at = min(pending.items(), key=lambda item: item[1])
            # Chaos keeps its own clock: the pause until the next blow is the schedule.
            self._stop.wait(max(0.0, at - time.monotonic()))
            getattr(self, f"_hit_{kind}")()
            due[kind] = at + every[kind]
        self._stop.wait(max(0.0, end - time.monotonic()))

    def _hit_worker(self) -> None:
        victim = self._workers.pop(0)
        victim.kill()
        self.report.worker_kills += 1
        self._workers.append(self._start_worker())

    def _hit_control_plane(self) -> None:
        self._control_plane.kill()
        self.report.control_plane_kills += 1
        self._control_plane.restart(same_port=True)

    def _hit_database(self) -> None:
        assert self._cluster is not None
        self._cluster.stop("immediate")
        self.report.database_restarts += 1
        self._cluster.start()

    def _start_worker(self) -> WorkerProcess:
        return start_worker(self._registry, self._control_plane.address, SOAK_STEPS)

    # -- the count ----------------------------------------------------------------------

    def _settle(self, client: Client) -> None:
        report = self.report
        started = dict(self._started)
        report.started = len(started)
        deadline = time.monotonic() + self.plan.drain_seconds
        waiting = set(started.values())
        statuses: dict[str, str] = {}
        # Drain: poll each run until it ends or the drain time is up.
        while waiting and time.monotonic() < deadline:
            for run_id in sorted(waiting):
                run = client.get(run_id, deadline + 30)
                if run is None:
                    statuses[run_id] = "MISSING"
                    waiting.discard(run_id)
                    continue
                statuses[run_id] = status_name(run.status)
                if statuses[run_id] in FINAL:
                    waiting.discard(run_id)
            if waiting:
                pause(0.2)
        charges = Counter(c["customer"] for c in self._api.charges())
        for request_id, run_id in sorted(started.items()):
            status = statuses.get(run_id, "UNKNOWN")
            customer = self._customers[request_id]
            if status == "MISSING":
                report.lost.append(run_id)
            elif status == "COMPLETED":
                report.completed += 1
                if charges[customer] == 0:
                    report.lost.append(f"{run_id} (completed without its charge)")
            else:
                report.stuck.append(f"{run_id} {status}")
            report.double_charges += max(0, charges[customer] - 1)
        # Charges of customers whose run was never answered count too.
        known = {self._customers[r] for r in started}
        report.double_charges += sum(max(0, n - 1) for c, n in charges.items() if c not in known)
        listed = [r.id for r in list_runs(client.stub, workflow_name=WORKFLOW)]
        report.duplicate_runs = sorted(set(listed) - set(started.values()))
        report.unexpected = list(client.unexpected)
        report.charges_replayed = sum(1 for r in self._api.requests() if r.replayed)
        report.attempts_lost = sum(
            len(events_of(history(client.stub, run_id), "ATTEMPT_LOST"))
            for run_id in started.values()
            if statuses.get(run_id) != "MISSING"
        )
