"""Replay (GetRunAt) agrees with the engine, and pausing and forking are pure transitions.

The property drives random runs as test_machine_properties does (results, late results,
retries, dead letters, operator decisions, cancellations) with pauses and resumes mixed in,
and after every transition folds the whole history so far through `replay.state_at`: the
run's status, output and pause, and every step's status, attempt, input and output must be
what the engine's own state says. Replay never sees the engine's state, only its events.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.engine import state as s
from controlplane.engine.events import PauseRequested, ResumeRequested, Transition
from controlplane.engine.forking import ForkRefused, fork_point, fork_run
from controlplane.engine.machine import RunClosed, apply
from controlplane.engine.pausing import PauseRefused
from controlplane.engine.replay import RecordedEvent, state_at
from controlplane.engine.triage import NotDeadLettered
from tests.engine.test_machine_properties import NodePlan, actions, build, choose_event, plans
from tests.engine.workflow_builders import T0, completed, start, task_node, workflow


class Recorder:
    """The run's history as the store would number it."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    def add(self, transition: Transition) -> None:
        for e in transition.events:
            self.events.append(
                RecordedEvent(
                    len(self.events) + 1, e.type, e.time, e.node_id, e.attempt, e.principal, e.data
                )
            )


def view(run: s.RunState) -> dict[str, Any]:
    """What GetRunAt promises to show, in a comparable form."""

    def status(step: s.StepState) -> str:
        # The engine's state never says RUNNING (a task row does); replay may, from
        # ATTEMPT_STARTED: both are an attempt that has not ended.
        return s.SCHEDULED if step.status == s.STEP_RUNNING else step.status

    return {
        "status": run.status,
        "output": run.output,
        "paused": None if run.paused is None else run.paused.get("reason"),
        "steps": {
            node: (
                status(step),
                step.attempt,
                step.input,
                step.output if step.status == s.STEP_COMPLETED else None,
                [a["outcome"] for a in step.finished_attempts],
            )
            for node, step in run.steps.items()
        },
    }


@settings(max_examples=200, deadline=None)
@given(plan=plans(), steps=actions, seed=st.integers(0, 2**32 - 1), pauses=st.integers(0, 7))
def test_replaying_the_history_gives_the_engines_state(
    plan: list[NodePlan], steps: list[tuple[str, int, int]], seed: int, pauses: int
) -> None:
    proto, catalog = build(plan)
    node_ids = [node.node_id for node in plan]
    draws = random.Random(seed)
    driven = start(proto, {"order": "o-1"}, catalog=catalog, uniform=draws.random)
    recorder = Recorder()
    recorder.add(driven.started)
    now = T0
    for index, (what, selector, elapsed) in enumerate(steps):
        now += elapsed
        if pauses and index % (pauses + 1) == pauses:
            paused = driven.run.paused is not None
            toggle = ResumeRequested("ops", now) if paused else PauseRequested("look", "ops", now)
            try:
                driven.run, transition = apply(
                    driven.run, toggle, driven.definition, catalog, draws.random
                )
            except PauseRefused:
                assert driven.run.status in s.TERMINAL
            else:
                recorder.add(transition)
        event, _ = choose_event(what, selector, driven.run, node_ids, now)
        try:
            driven.run, transition = apply(
                driven.run, event, driven.definition, catalog, draws.random
            )
        except (RunClosed, NotDeadLettered):
            continue
        recorder.add(transition)
        replayed = state_at(driven.run.id, "default", recorder.events)
        assert replayed.seq == len(recorder.events)
        assert view(replayed.state) == view(driven.run)
        assert replayed.state.input == {"order": "o-1"}


def test_pause_and_resume_are_history_and_refused_when_they_mean_nothing() -> None:
    driven = start(workflow(task_node("a", next=""), name="p"), {"x": 1})
    run = driven.run
    paused, transition = apply(
        run, PauseRequested("why", "ops", T0 + 1), driven.definition, driven.catalog, driven.uniform
    )
    assert [(e.type, e.principal, e.data) for e in transition.events] == [
        ("RUN_PAUSED", "ops", {"reason": "why"})
    ]
    assert paused.paused == {"by": "ops", "since": T0 + 1, "reason": "why"}
    assert run.paused is None, "apply changed the state it was given"
    assert not transition.schedule and not transition.remove
    with pytest.raises(PauseRefused, match="already paused"):
        apply(
            paused,
            PauseRequested("", "ops", T0 + 2),
            driven.definition,
            driven.catalog,
            driven.uniform,
        )
    with pytest.raises(PauseRefused, match="not paused"):
        apply(
            run, ResumeRequested("ops", T0 + 2), driven.definition, driven.catalog, driven.uniform
        )
    # A result while paused is recorded as usual; the run ends (it starts nothing new).
    done, _ = apply(
        paused,
        completed("a", 1, {"ok": True}, T0 + 3),
        driven.definition,
        driven.catalog,
        driven.uniform,
    )
    assert done.status == s.COMPLETED
    with pytest.raises(PauseRefused, match="COMPLETED"):
        apply(
            done, ResumeRequested("ops", T0 + 4), driven.definition, driven.catalog, driven.uniform
        )


def test_a_fork_reuses_what_completed_before_its_node_and_enters_it() -> None:
    proto = workflow(
        task_node("a", next="b"),
        task_node("b", next="c"),
        task_node("c", next=""),
        name="f",
    )
    driven = start(proto, {"x": 1})
    recorder = Recorder()
    recorder.add(driven.started)
    for node in ("a", "b", "c"):
        recorder.add(driven.send(completed(node, 1, {"from": node}, T0 + 1)))
    assert driven.run.status == s.COMPLETED

    point = fork_point(driven.definition, "run-1", recorder.events, "c")
    assert [(st.node_id, st.output) for st in point.reused] == [
        ("a", {"from": "a"}),
        ("b", {"from": "b"}),
    ]
    fork, transition = fork_run(
        run_id="run-2",
        namespace="default",
        definition=driven.definition,
        parent_id="run-1",
        point=point,
        input={"x": 2},
        time=T0 + 10,
        catalog=driven.catalog,
        uniform=driven.uniform,
        principal="ops",
    )
    assert [e.type for e in transition.events] == [
        "RUN_STARTED",
        "STEP_REUSED",
        "STEP_REUSED",
        "STEP_SCHEDULED",
    ]
    assert [t.node_id for t in transition.schedule] == ["c"]
    assert transition.schedule[0].idempotency_key == "run-2:c"
    assert fork.steps["b"].status == s.STEP_COMPLETED and fork.steps["b"].output == {"from": "b"}
    assert fork.input == {"x": 2} and fork.status == s.RUNNING
    with pytest.raises(ForkRefused, match="never entered"):
        fork_point(driven.definition, "run-1", recorder.events[:3], "c")
