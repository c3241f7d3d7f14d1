"""Property tests of the run state machine over the non-task node kinds.

A workflow with every kind (a compensated task, a switch, an approval, an event wait, a
parallel node with a task and a sleep in its branches, a sleep and a final task), with random
deadlines, timeouts and failure routes, receives a random sequence of worker results (current,
stale and lost), timers of every kind for any node, approval decisions, events, cancellations,
abandonments and an operator's retry or skip. After every event: the given state is untouched,
no node is advanced past twice per entry, no step is lost, the tasks that exist are exactly the
open attempts, and the run is running, waiting, needs attention or ended as its history says.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from surefoot.v1 import definition_pb2

from controlplane.engine import state as s
from controlplane.engine.definition import validate_definition
from controlplane.engine.events import (
    AbandonRequested,
    ApprovalDecided,
    CancelRequested,
    EventReceived,
    RunEvent,
    StepRetryRequested,
    StepSkipRequested,
    TimerFired,
    Transition,
)
from controlplane.engine.kinds import NodeKind, TimerKind
from controlplane.engine.machine import NotWaiting, RunClosed, apply
from controlplane.engine.triage import NotDeadLettered
from tests.engine.workflow_builders import (
    NO_STEP_TYPES,
    T0,
    approval_node,
    compensated,
    completed,
    failed,
    lost,
    parallel_node,
    retry_policy,
    sleep_node,
    start,
    switch_node,
    task_node,
    wait_node,
    workflow,
)

NODES = ["reserve", "route", "ask", "await", "fan", "left", "right", "nap", "ship"]
# What records a node's entry, and what records that it finished (and the run moved on).
ENTERED = {
    "STEP_SCHEDULED",
    "APPROVAL_REQUESTED",
    "SLEEP_STARTED",
    "EVENT_WAIT_STARTED",
    "BRANCH_TAKEN",
    "PARALLEL_STARTED",
}
FINISHED = {
    "ATTEMPT_COMPLETED",
    "APPROVAL_DECIDED",
    "SLEEP_FIRED",
    "EVENT_RECEIVED",
    "STEP_SKIPPED",
    "PARALLEL_JOINED",
}
ENDINGS = {"RUN_COMPLETED", "RUN_FAILED", "RUN_CANCELLED", "RUN_COMPENSATED"}
# Keyed by str: RunState.status and StepState.kind are typed as the strings they store.
ENDING_OF: dict[str, str] = {
    s.COMPLETED: "RUN_COMPLETED",
    s.FAILED: "RUN_FAILED",
    s.CANCELLED: "RUN_CANCELLED",
    s.COMPENSATED: "RUN_COMPENSATED",
}


@st.composite
def definitions(draw: st.DrawFn) -> definition_pb2.WorkflowDefinition:
    deadline = draw(st.sampled_from([0.0, 30.0]))
    on_timeout = draw(st.sampled_from(["approve", "reject", "escalate"])) if deadline else ""
    timeout = draw(st.sampled_from([0.0, 20.0]))
    retry = retry_policy(max_attempts=draw(st.integers(1, 3)), initial=1.0)
    proto = workflow(
        compensated(task_node("reserve", next="route", retry=retry), "release"),
        switch_node(
            "route",
            [("input.path == 'approve'", "ask"), ("input.path == 'wait'", "await")],
            default_next="fan",
        ),
        approval_node(
            "ask",
            next="nap",
            timeout_seconds=deadline,
            on_timeout=on_timeout,
            escalate_to=("carol",) if on_timeout == "escalate" else (),
            rejected_next=draw(st.sampled_from(["", "fan"])),
        ),
        wait_node(
            "await",
            next="nap",
            timeout_seconds=timeout,
            timeout_next=draw(st.sampled_from(["", "nap"])) if timeout else "",
        ),
        parallel_node("fan", ["left", "right"], next="nap"),
        compensated(
            task_node("left", idempotency=draw(st.sampled_from(["key", "none"])), retry=retry),
            "unpack",
        ),
        sleep_node("right", seconds=5),
        sleep_node("nap", next="ship", seconds=10),
        task_node(
            "ship", retry=retry, on_failure=draw(st.sampled_from(["", "fail", "compensate"]))
        ),
    )
    assert validate_definition(proto, NO_STEP_TYPES) == []
    return proto


TIMER_OF: dict[str, TimerKind] = {
    NodeKind.APPROVAL: TimerKind.APPROVAL_DEADLINE,
    NodeKind.SLEEP: TimerKind.SLEEP,
    NodeKind.WAIT_EVENT: TimerKind.EVENT_TIMEOUT,
}
KINDS = (
    ["complete"] * 4
    + ["fail", "lose", "stale"]
    + ["timer"] * 4
    + ["approve"] * 2
    + ["event"] * 2
    + ["reject", "cancel", "abandon", "retry", "skip"]
)
actions = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 1_000), st.integers(0, 40)), max_size=30
)


def open_tasks(run: s.RunState) -> list[s.StepState]:
    return [
        st for st in run.steps.values() if st.status in s.OPEN_STEP and st.kind in s.WORKER_KINDS
    ]


def choose(what: str, n: int, run: s.RunState, now: float) -> RunEvent:
    """The event an action stands for; targets favour what the run is at, but not always."""
    tasks = open_tasks(run)
    waits = [st for st in run.steps.values() if st.status == s.STEP_WAITING]
    if what in ("complete", "fail", "lose") and tasks:
        step = tasks[n % len(tasks)]
        if what == "complete":
            return completed(step.node_id, step.attempt, {"n": n}, now)
        if what == "fail":
            err = {"type": "Timeout", "message": "slow", "retryable": n % 3 != 0}
            return failed(step.node_id, step.attempt, err, now)
        return lost(step.node_id, step.attempt, now)
    if what in ("complete", "fail", "lose", "stale"):
        node = [*run.steps, "ghost"][n % (len(run.steps) + 1)]
        attempt = run.steps[node].attempt - 1 + 2 * (n % 2) if node in run.steps else 1
        return completed(node, attempt, {"stale": n}, now)
    if what == "timer":
        # Mostly a wait's own timer; sometimes one of a wait that has ended (a duplicate),
        # sometimes any kind for any node.
        ended = [
            st for st in run.steps.values() if st.kind in TIMER_OF and st.status != s.STEP_WAITING
        ]
        pool = waits if n % 4 else ended
        if pool and n % 7:
            step = pool[n % len(pool)]
            return TimerFired(step.node_id, TIMER_OF[step.kind], now)
        return TimerFired(NODES[n % len(NODES)], list(TimerKind)[n % 3], now)
    if what in ("approve", "reject"):
        target = "ask" if n % 5 else NODES[n % len(NODES)]
        return ApprovalDecided(target, what == "approve", "bob", what, now)
    if what == "event":
        target = "await" if n % 5 else NODES[n % len(NODES)]
        return EventReceived(target, "paid", "o-1", {"n": n}, f"ev-{n}", now, principal="carol")
    if what == "cancel":
        return CancelRequested("operator", "alice", now)
    if what == "abandon":
        return AbandonRequested("give up", "alice", now)
    target = run.attention if run.attention and n % 4 else NODES[n % len(NODES)]
    if what == "retry":
        return StepRetryRequested(target, "alice", "again", now)
    return StepSkipRequested(target, "alice", "by hand", now, output={"skipped": n})


def refusal_is_right(error: Exception, event: RunEvent, run: s.RunState) -> bool:
    """A refused event must be one the run cannot take."""
    if isinstance(error, RunClosed):
        return run.status in s.TERMINAL or (
            isinstance(event, AbandonRequested) and run.status == s.COMPENSATING
        )
    if isinstance(error, NotWaiting):
        assert isinstance(event, ApprovalDecided | EventReceived)
        kind = NodeKind.APPROVAL if isinstance(event, ApprovalDecided) else NodeKind.WAIT_EVENT
        step = run.steps.get(event.node_id)
        return (
            run.status in s.TERMINAL
            or step is None
            or step.kind != kind
            or step.status != s.STEP_WAITING
        )
    assert isinstance(error, NotDeadLettered)
    assert isinstance(event, StepRetryRequested | StepSkipRequested)
    return run.status != s.NEEDS_ATTENTION or event.node_id != run.attention


@dataclass
class Ledger:
    """What the engine decided over the run's transitions."""

    events: list[Any] = field(default_factory=list)
    tasks: set[str] = field(default_factory=set)
    task_ids: set[str] = field(default_factory=set)

    def add(self, transition: Transition) -> None:
        self.events += transition.events
        for task_id in transition.remove:
            assert task_id in self.tasks, f"removes {task_id}, which is not open"
            self.tasks.remove(task_id)
        for task in transition.schedule:
            assert task.task_id not in self.task_ids, f"task id {task.task_id} reused"
            self.tasks.add(task.task_id)
            self.task_ids.add(task.task_id)


def check(run: s.RunState, ledger: Ledger, seen_nodes: set[str]) -> None:
    # No step is lost: every node the run ever had a step for still has one.
    assert seen_nodes <= set(run.steps)
    seen_nodes.update(run.steps)
    # The tasks that exist are exactly the attempts the run waits on.
    assert ledger.tasks == {step.task_id for step in open_tasks(run)}
    endings = [e.type for e in ledger.events if e.type in ENDINGS]
    if run.status in s.TERMINAL:
        assert endings == [ENDING_OF[run.status]]
        assert not open_tasks(run)
        assert all(step.status != s.STEP_WAITING for step in run.steps.values())
    else:
        assert endings == []
    if run.status == s.WAITING:
        assert not open_tasks(run) and run.waiting_for
        assert any(step.status == s.STEP_WAITING for step in run.steps.values())
    if run.status == s.NEEDS_ATTENTION:
        assert run.attention and run.steps[run.attention].status == s.DEAD_LETTERED
    if run.status == s.COMPENSATING:
        assert run.compensation and not any(
            step.status == s.STEP_WAITING for step in run.steps.values()
        )
    entered: Counter[str] = Counter()
    finished: Counter[str] = Counter()
    for event in ledger.events:
        if event.type in ENTERED:
            entered[event.node_id] += 1
        if event.type in FINISHED:
            finished[event.node_id] += 1
    for node, step in run.steps.items():
        if node in NODES:
            # Each entry finishes at most once: the run never advances past a node twice.
            assert finished[node] <= step.entry
            assert entered[node] == step.entry
        # What the history says of the step (a late result it ignored says nothing).
        last = [e.type for e in ledger.events if e.node_id == node and e.type != "RESULT_IGNORED"]
        if step.status == s.DEAD_LETTERED:
            assert "STEP_DEAD_LETTERED" in last
        if step.status == s.STEP_CANCELLED:
            assert last[-1] == "STEP_CANCELLED"
        if step.status == s.COMPENSATED_STEP:
            undo = [
                e.type
                for e in ledger.events
                if e.node_id == s.compensation_key(node) and e.type != "RESULT_IGNORED"
            ]
            assert undo[-1] in ("ATTEMPT_COMPLETED", "STEP_SKIPPED")


def drive_to_an_end(driven: Any, ledger: Ledger, now: float) -> None:
    """Whatever happened, a run that is not ended can be taken to its end."""
    for _ in range(40):
        run = driven.run
        if run.status in s.TERMINAL:
            return
        now += 60
        event: RunEvent
        tasks = open_tasks(run)
        waits = [st for st in run.steps.values() if st.status == s.STEP_WAITING]
        if run.status == s.NEEDS_ATTENTION:
            event = StepSkipRequested(run.attention or "", "alice", "done", now)
        elif tasks:
            event = completed(tasks[0].node_id, tasks[0].attempt, {"last": True}, now)
        elif waits and waits[0].kind == NodeKind.APPROVAL:
            event = ApprovalDecided(waits[0].node_id, True, "bob", "ok", now)
        elif waits and waits[0].kind == NodeKind.WAIT_EVENT:
            event = EventReceived(waits[0].node_id, "paid", "o-1", {}, "ev-last", now)
        elif waits:
            event = TimerFired(waits[0].node_id, "sleep", now)
        else:
            pytest.fail(f"run {run.status} has nothing to wait on: {run.waiting_for}")
        ledger.add(driven.send(event))
        check(driven.run, ledger, set(driven.run.steps))
    pytest.fail(f"run did not end: {driven.run.status}")


@settings(max_examples=150, deadline=None)
@given(
    proto=definitions(),
    path=st.sampled_from(["approve", "wait", "fan"]),
    steps=actions,
    seed=st.integers(0, 2**32 - 1),
)
def test_any_interleaving_of_waits_decisions_and_results_keeps_the_run_consistent(
    proto: definition_pb2.WorkflowDefinition,
    path: str,
    steps: list[tuple[str, int, int]],
    seed: int,
) -> None:
    draws = random.Random(seed)
    driven = start(proto, {"order": "o-1", "path": path}, uniform=draws.random)
    ledger = Ledger()
    ledger.add(driven.started)
    seen_nodes: set[str] = set(driven.run.steps)
    check(driven.run, ledger, seen_nodes)
    now = T0
    for what, n, elapsed in steps:
        now += elapsed
        before = driven.run
        snapshot = copy.deepcopy(before)
        event = choose(what, n, before, now)
        try:
            after, transition = apply(
                before, event, driven.definition, driven.catalog, draws.random
            )
        except (RunClosed, NotWaiting, NotDeadLettered) as refused:
            assert refusal_is_right(refused, event, before), f"{event} refused: {refused}"
            assert before == snapshot
            continue
        assert before == snapshot, "apply changed the state it was given"
        if isinstance(event, TimerFired | ApprovalDecided | EventReceived):
            # A wake-up finishes at most the one node it is for.
            done = [
                e.node_id for e in transition.events if e.type in FINISHED - {"PARALLEL_JOINED"}
            ]
            assert done in ([], [event.node_id])
        ledger.add(transition)
        driven.run = after
        check(after, ledger, seen_nodes)
    drive_to_an_end(driven, ledger, now)
