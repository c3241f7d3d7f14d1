"""Reading runs for the API: one run, pages of runs and their tokens."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import Engine
from surefoot.v1 import run_pb2

from controlplane.api.convert import run_detail
from controlplane.engine.events import AttemptCompleted, CancelRequested
from controlplane.store.run_queries import BadPageToken, get_run, list_runs
from tests.store.stored_runs import T0, orders_definition, register, save_event, save_new_run

# (run id, created at): ties on the creation time are broken by id, newest first.
RUNS = [
    ("run-c", T0),
    ("run-a", T0 + 1),
    ("run-g", T0 + 1),
    ("run-b", T0 + 1),
    ("run-f", T0 + 2.5),
    ("run-e", T0 + 3),
    ("run-d", T0 + 3),
]
NEWEST_FIRST = ["run-e", "run-d", "run-f", "run-g", "run-b", "run-a", "run-c"]


@pytest.fixture
def seven_runs(engine: Engine) -> Engine:
    definition = register(engine, orders_definition())
    for run_id, created_at in RUNS:
        save_new_run(engine, definition, run_id, input={"id": run_id}, time=created_at)
    return engine


def test_paging_returns_every_run_once_newest_first(seven_runs: Engine) -> None:
    pages = []
    token = ""
    with seven_runs.connect() as connection:
        while True:
            rows, token = list_runs(connection, "default", page_size=3, page_token=token)
            pages.append([row.id for row in rows])
            if not token:
                break
            assert len(pages) < 10, "the page tokens do not advance"

    assert pages == [NEWEST_FIRST[0:3], NEWEST_FIRST[3:6], NEWEST_FIRST[6:]]


def test_a_page_that_ends_exactly_at_the_last_run_has_no_next_token(seven_runs: Engine) -> None:
    with seven_runs.connect() as connection:
        rows, token = list_runs(connection, "default", page_size=7)
    assert [row.id for row in rows] == NEWEST_FIRST
    assert token == ""


def test_paging_is_stable_when_runs_start_between_pages(seven_runs: Engine) -> None:
    definition = register(seven_runs, orders_definition())
    with seven_runs.connect() as connection:
        first, token = list_runs(connection, "default", page_size=3)
    save_new_run(seven_runs, definition, "run-z", input={}, time=T0 + 10)
    with seven_runs.connect() as connection:
        second, _ = list_runs(connection, "default", page_size=3, page_token=token)
    assert [row.id for row in first + second] == NEWEST_FIRST[:6]


def test_filters_by_status_and_workflow(seven_runs: Engine) -> None:
    definition = register(seven_runs, orders_definition())
    save_event(seven_runs, definition, "run-f", CancelRequested("dup", "alice", T0 + 20))
    with seven_runs.connect() as connection:
        cancelled, _ = list_runs(connection, "default", statuses=["CANCELLED"])
        running, _ = list_runs(connection, "default", statuses=["RUNNING"], page_size=100)
        other_name, _ = list_runs(connection, "default", workflow_name="refunds")
        other_namespace, _ = list_runs(connection, "other")
    assert [row.id for row in cancelled] == ["run-f"]
    assert len(running) == 6
    assert other_name == other_namespace == []


def token_of(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        base64.urlsafe_b64encode(b"\xff\xfe not json").decode(),
        token_of(["2026-09-21T14:13:20+00:00", "run-a"]),
        token_of({"i": "run-a"}),
        token_of({"c": 17, "i": "run-a"}),
        token_of({"c": "yesterday", "i": "run-a"}),
        # Well-formed but without a time zone: the server never issues these.
        token_of({"c": "2026-09-21T14:13:20", "i": "run-a"}),
    ],
    ids=["garbage", "not json", "a list", "no time", "time not text", "bad time", "naive time"],
)
def test_a_page_token_the_server_did_not_issue_is_refused(seven_runs: Engine, token: str) -> None:
    with seven_runs.connect() as connection, pytest.raises(BadPageToken):
        list_runs(connection, "default", page_size=3, page_token=token)


def test_get_run_returns_the_run_with_its_tasks_and_finished_attempts(seven_runs: Engine) -> None:
    """GetRun's view comes from projections (the run's state with its steps' finished
    attempts, the tasks), never from the history: the console asks for it every second,
    however long the run's history has grown."""
    definition = register(seven_runs, orders_definition())
    with seven_runs.connect() as connection:
        view = get_run(connection, "default", "run-a")
        elsewhere = get_run(connection, "other", "run-a")
        missing = get_run(connection, "default", "run-nope")
    assert view is not None
    assert view.run.id == "run-a"
    assert [task.id for task in view.tasks] == ["run-a:reserve:1"]
    assert [list(step.attempts) for step in run_detail(view).steps] == [[]]
    assert elsewhere is None
    assert missing is None

    finished = AttemptCompleted("reserve", 1, {"held": True}, T0 + 2, "worker-1", T0 + 1)
    save_event(seven_runs, definition, "run-a", finished)
    with seven_runs.connect() as connection:
        view = get_run(connection, "default", "run-a")
    assert view is not None
    shown = [
        (step.node_id, a.number, run_pb2.AttemptOutcome.Name(a.outcome), a.worker_id)
        for step in run_detail(view).steps
        for a in step.attempts
    ]
    assert shown == [("reserve", 1, "ATTEMPT_OUTCOME_COMPLETED", "worker-1")]
    assert [task.id for task in view.tasks] == ["run-a:charge:1"]
