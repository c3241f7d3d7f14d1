"""Property tests of the run state machine over random interleavings of worker results.

A sequential workflow of 1-5 task nodes, each with its own random retry policy, idempotency
and failure routing, receives a random sequence of events: results for the current attempt,
late and duplicate results for attempts that are no longer current, results for steps that
have completed, results for nodes that never ran, cancellations, and an operator's retry or
skip of a dead letter (or of a step that is not one). Law 3 and the retry contract must hold
after every event, whatever the order.

The expectations are computed from the generated plan (what the author declared), not from
the engine's own state, so that a wrong decision in the engine cannot agree with itself.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import event as note_case
from hypothesis import given, settings
from hypothesis import strategies as st
from surefoot.v1 import definition_pb2

from controlplane.engine import state as s
from controlplane.engine.definition import StepCatalog, StepDeclaration, validate_definition
from controlplane.engine.events import (
    AttemptCompleted,
    AttemptFailed,
    AttemptLost,
    CancelRequested,
    RunEvent,
    StepRetryRequested,
    StepSkipRequested,
    Transition,
)
from controlplane.engine.machine import RunClosed, apply
from controlplane.engine.retry import RetryPolicy
from controlplane.engine.triage import NotDeadLettered
from tests.engine.workflow_builders import (
    T0,
    catalog_of,
    completed,
    failed,
    lost,
    retry_policy,
    start,
    task_node,
    workflow,
)

# Error types a worker reports; "Fatal" is in some nodes' non_retryable_error_types.
TRANSIENT = {"type": "Timeout", "message": "upstream timed out", "retryable": True}
FATAL = {"type": "Fatal", "message": "card is stolen", "retryable": True}
REFUSED = {"type": "BadRequest", "message": "no such card", "retryable": False}
ERRORS = [TRANSIENT, FATAL, REFUSED]


@dataclass(frozen=True)
class NodePlan:
    """What the author declared for one node; the test's model of how it must behave."""

    node_id: str
    policy: RetryPolicy
    idempotency: str
    # Where the declarations come from: the node itself or its step type's registration.
    declared_on_node: bool
    failure: str  # "dead_letter", "fail" or "fallback"
    fallback: str | None
    next: str | None
    input: str


@st.composite
def plans(draw: st.DrawFn) -> list[NodePlan]:
    count = draw(st.integers(1, 5))
    ids = [f"n{i}" for i in range(count)]
    result = []
    for index, node_id in enumerate(ids):
        later = ids[index + 1 :]
        failure = draw(
            st.sampled_from(
                ["dead_letter", "fail", "fallback"] if later else ["dead_letter", "fail"]
            )
        )
        policy = RetryPolicy(
            max_attempts=draw(st.integers(1, 5)),
            initial_interval=draw(st.sampled_from([0.5, 1.0, 2.5, 10.0])),
            backoff_coefficient=draw(st.sampled_from([1.0, 1.5, 2.0, 3.0])),
            max_interval=draw(st.sampled_from([0.25, 5.0, 30.0, 3600.0])),
            jitter=draw(st.sampled_from([0.1, 0.2, 0.5, 1.0])),
            non_retryable_error_types=draw(st.sampled_from([(), ("Fatal",)])),
        )
        earlier = [f"steps.{n}.output" for n in ids[:index]]
        result.append(
            NodePlan(
                node_id=node_id,
                policy=policy,
                idempotency=draw(st.sampled_from(["key", "natural", "none"])),
                declared_on_node=draw(st.booleans()),
                failure=failure,
                fallback=draw(st.sampled_from(later)) if failure == "fallback" else None,
                next=later[0] if later else None,
                input=draw(st.sampled_from(["", "input", *earlier])),
            )
        )
    return result


def build(plan: list[NodePlan]) -> tuple[definition_pb2.WorkflowDefinition, StepCatalog]:
    """The definition and step catalog for a plan. When the node declares its policy, the
    registration says something else, so that using the wrong one shows."""
    nodes = []
    registrations = {}
    for node in plan:
        step_type = f"step-{node.node_id}"
        proto_retry = retry_policy(
            max_attempts=node.policy.max_attempts,
            initial=node.policy.initial_interval,
            backoff=node.policy.backoff_coefficient,
            max_interval=node.policy.max_interval,
            jitter=node.policy.jitter,
            non_retryable=node.policy.non_retryable_error_types,
        )
        nodes.append(
            task_node(
                node.node_id,
                next=node.next or "",
                step_type=step_type,
                input=node.input,
                idempotency=node.idempotency if node.declared_on_node else "",
                retry=proto_retry if node.declared_on_node else None,
                on_failure="fail" if node.failure == "fail" else "",
                on_failure_next=node.fallback or "",
            )
        )
        if node.declared_on_node:
            decoy = "none" if node.idempotency != "none" else "key"
            registrations[step_type] = StepDeclaration(decoy, RetryPolicy(max_attempts=99))
        else:
            registrations[step_type] = StepDeclaration(node.idempotency, node.policy)
    proto = workflow(*nodes)
    catalog = catalog_of(registrations)
    assert validate_definition(proto, catalog) == []
    return proto, catalog


# An action is (what, a selector among the candidates, seconds since the previous event).
# Time may step back a little: control planes sharing a database do not share a clock.
KINDS = (
    ["complete"] * 3
    + ["fail"] * 3
    + ["lose"] * 2
    + ["stale"] * 3
    + ["finished"] * 2
    + ["cancel", "retry", "skip"]
)
actions = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 1_000), st.integers(-3, 50)), max_size=40
)

# The events the actions stand for: a worker's results and an operator's decisions. Narrower
# than RunEvent, so that an accepted result is known to name its node.
AttemptResult = AttemptCompleted | AttemptFailed | AttemptLost
Chosen = AttemptResult | CancelRequested | StepRetryRequested | StepSkipRequested


def result_event(kind: int, node: str, attempt: int, selector: int, now: float) -> AttemptResult:
    if kind == 0:
        return completed(node, attempt, {"node": node, "attempt": attempt, "n": selector}, now)
    if kind == 1:
        return failed(node, attempt, ERRORS[selector % len(ERRORS)], now)
    return lost(node, attempt, now)


def choose_event(
    what: str, selector: int, run: s.RunState, node_ids: list[str], now: float
) -> tuple[Chosen, str]:
    """The event an action stands for, and what the engine must do with it:
    "accept", "ignore" (RESULT_IGNORED, nothing else), "refuse" (RunClosed) or "not dead"
    (NotDeadLettered: an operator's decision on something that is not the dead letter)."""
    if what == "cancel":
        return CancelRequested("operator", "alice", now), (
            "refuse" if run.status in s.TERMINAL else "accept"
        )
    if what in ("retry", "skip"):
        target = run.attention or run.current_node or "ghost"
        if run.status == s.NEEDS_ATTENTION and selector % 5 == 0:
            target = node_ids[selector % len(node_ids)]  # sometimes the wrong node
        event: Chosen = (
            StepRetryRequested(target, "bob", "fixed", now)
            if what == "retry"
            else StepSkipRequested(target, "bob", "by hand", now, output={"skipped": selector})
        )
        dead = run.status == s.NEEDS_ATTENTION and target == run.attention
        return event, "accept" if dead else "not dead"
    current = run.steps[run.current_node] if run.current_node else None
    open_now = run.status == s.RUNNING
    if what in ("complete", "fail", "lose") and current is not None:
        kind = ("complete", "fail", "lose").index(what)
        event = result_event(kind, current.node_id, current.attempt, selector, now)
        # The current attempt of a step that is dead-lettered, or of a run that has ended,
        # is a duplicate: its outcome has been recorded already.
        return event, "accept" if open_now else "ignore"
    kind = selector % 3
    candidates: list[tuple[str, int]] = []
    if what == "finished":
        candidates = [
            (n, step.attempt) for n, step in run.steps.items() if step.status == s.STEP_COMPLETED
        ]
    if not candidates:
        candidates = [("ghost", 1)] + [(n, 1) for n in node_ids if n not in run.steps]
        for n, step in run.steps.items():
            candidates += [(n, a) for a in range(1, step.attempt)]  # superseded attempts
            candidates.append((n, step.attempt + 1 + selector % 3))  # attempts never made
    node, attempt = candidates[selector % len(candidates)]
    return result_event(kind, node, attempt, selector, now), "ignore"


@dataclass
class History:
    """Everything the engine decided for one run, accumulated over its transitions."""

    scheduled_attempts: dict[str, list[int]] = dataclasses.field(
        default_factory=lambda: defaultdict(list)
    )
    outcomes: dict[str, list[int]] = dataclasses.field(default_factory=lambda: defaultdict(list))
    completions: Counter[str] = dataclasses.field(default_factory=Counter)
    step_scheduled: Counter[str] = dataclasses.field(default_factory=Counter)
    run_endings: int = 0
    # Operator retries per node: each one starts the retry budget again.
    retried: Counter[str] = dataclasses.field(default_factory=Counter)
    open_tasks: set[str] = dataclasses.field(default_factory=set)
    every_task: set[str] = dataclasses.field(default_factory=set)
    checkpoints: dict[str, Any] = dataclasses.field(default_factory=dict)

    def add(self, transition: Transition) -> None:
        for event in transition.events:
            if event.type in ("STEP_SCHEDULED", "RETRY_SCHEDULED", "STEP_RETRIED"):
                self.scheduled_attempts[event.node_id].append(event.attempt)
            if event.type == "STEP_RETRIED":
                self.retried[event.node_id] += 1
            if event.type == "STEP_SCHEDULED":
                self.step_scheduled[event.node_id] += 1
            if event.type in ("ATTEMPT_COMPLETED", "ATTEMPT_FAILED", "ATTEMPT_LOST"):
                self.outcomes[event.node_id].append(event.attempt)
            if event.type == "ATTEMPT_COMPLETED":
                self.completions[event.node_id] += 1
            if event.type in ("RUN_COMPLETED", "RUN_FAILED", "RUN_CANCELLED"):
                self.run_endings += 1
        for task_id in transition.remove:
            assert task_id in self.open_tasks, f"removes {task_id}, which is not open"
            self.open_tasks.remove(task_id)
        for task in transition.schedule:
            # Task ids name one attempt: a new attempt must never reuse one.
            assert task.task_id not in self.every_task, f"task id {task.task_id} reused"
            self.open_tasks.add(task.task_id)
            self.every_task.add(task.task_id)


def check_run(run: s.RunState, history: History, plan: dict[str, NodePlan]) -> None:
    """The invariants that hold after every event, whatever came before."""
    open_steps = [step for step in run.steps.values() if step.status in s.OPEN_STEP]
    if run.status == s.RUNNING:
        # Waiting on exactly one attempt, and that attempt is the one task that exists.
        assert len(open_steps) == 1
        [step] = open_steps
        assert run.current_node == step.node_id
        assert history.open_tasks == {step.task_id}
    else:
        # Ended, or waiting for an operator: nothing left that a worker could pick up.
        assert run.status in s.TERMINAL | {s.NEEDS_ATTENTION}
        assert open_steps == []
        assert history.open_tasks == set()
    assert history.run_endings == (1 if run.status in s.TERMINAL else 0)
    for node, step in run.steps.items():
        # Attempts 1, 2, 3... without gaps; each has at most one outcome; the run advanced
        # past a node at most once.
        assert history.scheduled_attempts[node] == list(range(1, step.attempt + 1))
        assert history.outcomes[node] == sorted(set(history.outcomes[node]))
        assert history.step_scheduled[node] == 1
        assert history.completions[node] <= 1
        failures = len(history.outcomes[node]) - history.completions[node]
        assert failures <= plan[node].policy.max_attempts * (1 + history.retried[node])
        assert step.idempotency_key == f"{run.id}:{node}"
    for node, output in history.checkpoints.items():
        # A checkpoint is never lost or changed.
        assert run.steps[node].status == s.STEP_COMPLETED
        assert run.steps[node].output == output
    for node, step in run.steps.items():
        if step.status == s.STEP_COMPLETED:
            history.checkpoints.setdefault(node, copy.deepcopy(step.output))


def check_accepted_result(
    before: s.RunState,
    after: s.RunState,
    event: RunEvent,
    transition: Transition,
    node: NodePlan,
) -> None:
    """What an accepted result must lead to, from the author's declarations alone."""
    assert not isinstance(event, CancelRequested)
    step = before.steps[node.node_id]
    kinds = [e.type for e in transition.events]
    if kinds[0] == "ATTEMPT_STARTED":
        kinds = kinds[1:]
    if isinstance(event, AttemptCompleted):
        assert kinds[0] == "ATTEMPT_COMPLETED"
        assert after.steps[node.node_id].output == event.output
        assert after.context()["steps"][node.node_id] == {"output": event.output}
        if node.next:
            assert kinds[1:] == ["STEP_SCHEDULED"]
            assert after.current_node == node.next
        else:
            assert kinds[1:] == ["RUN_COMPLETED"]
            assert after.status == s.COMPLETED
            assert after.output == event.output
        return
    was_lost = isinstance(event, AttemptLost)
    policy = node.policy
    # Attempts in the current budget: an operator's retry starts a new one.
    spent = step.attempt - step.retry_base
    if was_lost:
        dead = node.idempotency == "none" or spent >= policy.max_attempts
    else:
        err = event.error  # type: ignore[union-attr]
        non_retryable = not err["retryable"] or err["type"] in policy.non_retryable_error_types
        dead = non_retryable or spent >= policy.max_attempts
    if not dead:
        assert kinds[1:] == ["RETRY_SCHEDULED"]
        retry = transition.events[-1]
        assert retry.attempt == step.attempt + 1
        delay = retry.data["delay_seconds"]
        if was_lost:
            # The worker went away, not the step: hand it out again at once.
            assert delay == 0
        else:
            jitter = policy.jitter
            base = min(
                policy.max_interval,
                policy.initial_interval * policy.backoff_coefficient ** (spent - 1),
            )
            assert base * (1 - jitter) - 1e-6 <= delay <= base * (1 + jitter) + 1e-6
            assert after.steps[node.node_id].status == (s.RETRY_WAIT if delay > 0 else s.SCHEDULED)
        [task] = transition.schedule
        assert task.available_at == pytest.approx(event.time + delay, abs=1e-6)
        # At-least-once: the same input and the same idempotency key, a new task id.
        assert task.input == step.input
        assert task.idempotency_key == step.idempotency_key
        assert after.status == s.RUNNING
        return
    assert kinds[1] == "STEP_DEAD_LETTERED"
    assert after.steps[node.node_id].status == s.DEAD_LETTERED
    if node.failure == "fail":
        assert kinds[2:] == ["RUN_FAILED"]
        assert after.status == s.FAILED
    elif node.failure == "fallback":
        assert kinds[2:] == ["STEP_SCHEDULED"]
        assert after.current_node == node.fallback
    else:
        assert kinds[2:] == []
        assert after.status == s.NEEDS_ATTENTION
        assert after.last_error is not None


def check_operator_decision(
    before: s.RunState,
    after: s.RunState,
    event: StepRetryRequested | StepSkipRequested,
    transition: Transition,
    plan: dict[str, NodePlan],
) -> None:
    """A retry schedules the next attempt of the same operation; a skip moves on from it."""
    step = before.steps[event.node_id]
    kinds = [e.type for e in transition.events]
    assert after.attention is None
    if isinstance(event, StepRetryRequested):
        assert kinds == ["STEP_RETRIED"]
        [task] = transition.schedule
        assert task.attempt == step.attempt + 1
        assert (task.idempotency_key, task.input) == (step.idempotency_key, step.input)
        assert after.status == s.RUNNING
        assert after.steps[event.node_id].retry_base == step.attempt
        return
    assert kinds[0] == "STEP_SKIPPED"
    assert after.steps[event.node_id].status == s.STEP_COMPLETED
    assert after.steps[event.node_id].output == event.output
    following = plan[event.node_id].next
    if following:
        assert kinds[1:] == ["STEP_SCHEDULED"] and after.current_node == following
    else:
        assert kinds[1:] == ["RUN_COMPLETED"] and after.status == s.COMPLETED


@settings(max_examples=300, deadline=None)
@given(plan=plans(), steps=actions, seed=st.integers(0, 2**32 - 1))
def test_any_interleaving_of_results_keeps_the_run_consistent(
    plan: list[NodePlan], steps: list[tuple[str, int, int]], seed: int
) -> None:
    proto, catalog = build(plan)
    by_node = {node.node_id: node for node in plan}
    node_ids = list(by_node)
    draws = random.Random(seed)
    driven = start(proto, {"order": "o-1"}, catalog=catalog, uniform=draws.random)
    history = History()
    history.add(driven.started)
    check_run(driven.run, history, by_node)
    # Every state the engine returned, with a deep copy taken when it was returned: apply
    # must never change a state it was given, nor one it gave out earlier.
    seen: list[tuple[s.RunState, s.RunState]] = [(driven.run, copy.deepcopy(driven.run))]
    now = T0
    expectations: list[str] = []

    for what, selector, elapsed in steps:
        now += elapsed
        before = driven.run
        event, expected = choose_event(what, selector, before, node_ids, now)
        expectations.append(expected)
        if expected in ("refuse", "not dead"):
            with pytest.raises(RunClosed if expected == "refuse" else NotDeadLettered):
                apply(before, event, driven.definition, catalog, draws.random)
            continue
        after, transition = apply(before, event, driven.definition, catalog, draws.random)
        assert seen[-1][0] == seen[-1][1], "apply changed the state it was given"
        kinds = [e.type for e in transition.events]
        if expected == "ignore":
            # Recorded as such, and nothing else: law 3.
            assert kinds == ["RESULT_IGNORED"]
            assert (transition.schedule, transition.remove, transition.cancel) == ([], [], [])
            assert dataclasses.replace(after, updated_at=before.updated_at) == before
        else:
            assert "RESULT_IGNORED" not in kinds
            if isinstance(event, CancelRequested):
                assert kinds[-1] == "RUN_CANCELLED"
                assert set(kinds[:-1]) <= {"STEP_CANCELLED"}
                assert after.status == s.CANCELLED
                assert transition.cancel == transition.remove
            elif isinstance(event, StepRetryRequested | StepSkipRequested):
                check_operator_decision(before, after, event, transition, by_node)
            else:
                check_accepted_result(before, after, event, transition, by_node[event.node_id])
        assert after.updated_at == max(before.updated_at, now)
        history.add(transition)
        driven.run = after
        check_run(after, history, by_node)
        seen.append((after, copy.deepcopy(after)))

    note_case(f"status after the random events: {driven.run.status}")
    decided = sum(
        expected == "accept" and what in ("retry", "skip")
        for expected, (what, _, _) in zip(expectations, steps, strict=False)
    )
    note_case(f"operator decisions on dead letters: {min(decided, 2)}")
    ignored = sum(expected == "ignore" for expected in expectations)
    note_case(f"results ignored: {'5+' if ignored >= 5 else ignored}")
    for state, snapshot in seen:
        assert state == snapshot, "a state given out earlier was changed afterwards"

    # Whatever happened, a run that is still going can be driven to its end.
    for _ in range(len(plan)):
        if driven.run.status != s.RUNNING:
            break
        step = driven.run.steps[driven.run.current_node or ""]
        now += 1
        transition = driven.send(completed(step.node_id, step.attempt, {"last": True}, now))
        history.add(transition)
        check_run(driven.run, history, by_node)
    assert driven.run.status != s.RUNNING


@settings(max_examples=300, deadline=None)
@given(
    policy=st.builds(
        RetryPolicy,
        max_attempts=st.integers(1, 10),
        initial_interval=st.floats(0.001, 1_000),
        backoff_coefficient=st.floats(1, 10),
        max_interval=st.floats(0.001, 100_000),
        jitter=st.floats(0, 1),
    ),
    # Beyond 65 attempts the exponent is capped (see test_machine.py).
    attempt=st.integers(1, 64),
    draw=st.floats(0, 1, exclude_max=True),
)
def test_retry_delays_grow_geometrically_up_to_the_cap_within_the_jitter(
    policy: RetryPolicy, attempt: int, draw: float
) -> None:
    base = policy.base_delay(attempt)
    following = policy.base_delay(attempt + 1)
    assert base <= policy.max_interval
    assert base <= following  # never shrinks
    if following < policy.max_interval:
        assert following == pytest.approx(base * policy.backoff_coefficient)
    if attempt == 1:
        assert base == min(policy.initial_interval, policy.max_interval)
    delay = policy.delay_for(attempt, lambda: draw)
    assert base * (1 - policy.jitter) - 1e-9 <= delay <= base * (1 + policy.jitter) + 1e-9
    # The extremes of the injected source reach the extremes of the range.
    assert policy.delay_for(attempt, lambda: 0.0) == pytest.approx(base * (1 - policy.jitter))
    assert policy.gives_up_after(attempt) == (attempt >= policy.max_attempts)
