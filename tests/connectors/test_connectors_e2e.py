"""Acceptance tests of the connectors: a real control plane, a real `surefoot connectors
worker` process, and real local services (HTTP, SMTP, PostgreSQL) on free ports.

What each test checks is what an operator would see: the run's status, its history and
what the service received, measured at the service.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.store.connector_outcomes import COMPLETED, STARTED
from tests.connectors.connector_calls import API_TOKEN, StartConnectorWorker
from tests.connectors.connector_servers import FakeApi, Reply, SmtpSink
from tests.connectors.connector_workflows import one_call, signup
from tests.connectors.outcome_plane import read_record
from tests.support.databases import fresh_postgres_database, require_postgres
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, run_cli
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)

# The control plane's database changes nothing in what these tests check, so they run on
# PostgreSQL only, to keep the suite fast; the crash tests, where the worker writes its
# outcome records into the very database the control plane uses, run on both.
ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
# The retry is due 2 s after the failure was recorded, itself after the first request
# arrived; a few milliseconds allow for the rounding of the times the control plane stores.
CLOCK_TOLERANCE = 0.005


@ON_POSTGRES
def test_http_503_waits_for_retry_after_and_400_dead_letters_at_once(
    control_plane: ControlPlane, connector_worker: StartConnectorWorker, fake_api: FakeApi
) -> None:
    fake_api.script("/flaky", Reply(503, "busy", headers={"Retry-After": "2"}), Reply(200))
    fake_api.script("/bad", Reply(400, {"error": "amount must be positive"}))
    stub = control_plane.stub
    register(stub, one_call("http-call", "surefoot.http"))
    connector_worker()

    flaky = start_run(stub, "http-call", {"method": "POST", "url": fake_api.url("/flaky")})
    bad = start_run(stub, "http-call", {"method": "POST", "url": fake_api.url("/bad")})

    # 503 then 200: the step completes with the second answer.
    run = wait_for_status(stub, flaky, "COMPLETED")
    assert payload_value(run.output)["status"] == 200
    assert payload_value(run.output)["body"] == {"ok": True}
    first, second = fake_api.received("/flaky")
    assert second.at - first.at >= 2.0 - CLOCK_TOLERANCE, second.at - first.at
    (step,) = run.steps
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.headers["idempotency-key"] == step.idempotency_key
    events = history(stub, flaky)
    assert_history_well_formed(events)
    (failed,) = events_of(events, "ATTEMPT_FAILED")
    assert failed.data["error"]["type"] == "HttpStatus503"
    assert failed.data["error"]["retry_after"] == 2.0
    (retry,) = events_of(events, "RETRY_SCHEDULED")
    assert retry.data["delay_seconds"] >= 2.0, retry.data
    assert [e.attempt for e in events_of(events, "ATTEMPT_COMPLETED")] == [2]

    # 400: one request, no retry, the run needs attention.
    run = wait_for_status(stub, bad, "NEEDS_ATTENTION")
    assert len(fake_api.received("/bad")) == 1
    (step,) = run.steps
    assert step.status == run_pb2.STEP_STATUS_DEAD_LETTERED
    assert run.last_error.type == "HttpStatus400"
    assert "amount must be positive" in run.last_error.message
    assert [(e.type, e.attempt) for e in history(stub, bad) if e.node_id == "call"] == [
        ("STEP_SCHEDULED", 1),
        ("ATTEMPT_STARTED", 1),
        ("ATTEMPT_FAILED", 1),
        ("STEP_DEAD_LETTERED", 1),
    ]


@ON_POSTGRES
def test_a_secret_reaches_the_service_and_nothing_else(
    control_plane: ControlPlane, connector_worker: StartConnectorWorker, fake_api: FakeApi
) -> None:
    fake_api.script("/me", Reply(200, echo_header="Authorization"))
    # A service that quotes the credential back in its error answer.
    fake_api.script("/refuse", Reply(400, echo_header="Authorization"))
    stub = control_plane.stub
    register(stub, one_call("with-secret", "surefoot.http"))
    worker = connector_worker()
    headers = {"Authorization": "Bearer ${secret:api_token}"}

    accepted = start_run(stub, "with-secret", {"url": fake_api.url("/me"), "headers": headers})
    refused = start_run(stub, "with-secret", {"url": fake_api.url("/refuse"), "headers": headers})

    run = wait_for_status(stub, accepted, "COMPLETED")
    assert payload_value(run.output)["body"] == {"echo": "Bearer ***"}
    dead = wait_for_status(stub, refused, "NEEDS_ATTENTION")
    assert dead.last_error.type == "HttpStatus400"
    assert "Bearer ***" in dead.last_error.message
    for path in ("/me", "/refuse"):
        (received,) = fake_api.received(path)
        assert received.headers["authorization"] == f"Bearer {API_TOKEN}"

    seen: list[str] = []
    for run_id in (accepted, refused):
        response = stub.GetRunHistory(ws.GetRunHistoryRequest(run_id=run_id), timeout=30)
        seen += [str(event) + event.data.data.decode() for event in response.events]
        seen.append(str(stub.GetRun(ws.GetRunRequest(run_id=run_id), timeout=30)))
        # The input in the history holds the reference, which the worker resolved.
        step_input = events_of(history(stub, run_id), "STEP_SCHEDULED")[0].data
        assert "${secret:api_token}" in json.dumps(step_input)

    commands = [
        ("runs", command, run_id, *flags)
        for run_id in (accepted, refused)
        for command in ("show", "history")
        for flags in ((), ("--json",))
    ]
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda args: run_cli(*args, "--address", control_plane.address), commands)
        )
    for args, result in zip(commands, results, strict=True):
        assert result.returncode == 0, (args, result.stderr)
        seen += [result.stdout, result.stderr]
    assert control_plane.process is not None
    for process in (control_plane.process, worker):
        seen += [process.stdout(), process.stderr()]

    leaks = [text for text in seen if API_TOKEN in text]
    assert leaks == [], leaks[:1]
    assert any("Bearer ***" in text for text in seen)


def test_a_call_whose_outcome_is_unknown_goes_to_a_human(
    control_plane: ControlPlane, connector_worker: StartConnectorWorker, fake_api: FakeApi
) -> None:
    """The worker dies while the webhook is being posted: it may have been posted, so the
    retry does not post again, and the step is dead-lettered as OutcomeUnknown."""
    fake_api.script("/hook", Reply(200, "ok", hold=threading.Event()))
    stub = control_plane.stub
    register(stub, one_call("notify", "surefoot.webhook"))
    doomed = connector_worker()
    run_id = start_run(stub, "notify", {"url": fake_api.url("/hook"), "text": "deployed"})

    assert_eventually(lambda: fake_api.received("/hook"), message="the post reached the API")
    doomed.kill()
    connector_worker()

    run = wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    assert run.last_error.type == "OutcomeUnknown"
    assert not run.last_error.retryable
    assert "attempt 1 of this step started calling" in run.last_error.message
    assert len(fake_api.received("/hook")) == 1
    events = history(stub, run_id)
    assert [(e.type, e.attempt) for e in events if e.node_id == "call"] == [
        ("STEP_SCHEDULED", 1),
        ("ATTEMPT_STARTED", 1),
        ("ATTEMPT_LOST", 1),
        ("RETRY_SCHEDULED", 2),
        ("ATTEMPT_STARTED", 2),
        ("ATTEMPT_FAILED", 2),
        ("STEP_DEAD_LETTERED", 2),
    ]
    recorded = read_record(control_plane.database_url, run.steps[0].idempotency_key)
    assert recorded is not None and recorded.state == STARTED and recorded.attempt == 1


def test_a_recorded_call_is_not_made_again_after_a_crash(
    control_plane: ControlPlane, connector_worker: StartConnectorWorker, fake_api: FakeApi
) -> None:
    """The API answered and the control plane recorded the answer, but the worker died
    before it reported the result (then the control plane restarted too): the next attempt
    returns the recorded answer instead of calling an API that ignores Idempotency-Key."""
    hold = threading.Event()
    fake_api.script("/charges", Reply(201, {"charge": "ch_1"}, hold=hold))
    stub = control_plane.stub
    register(stub, one_call("charge", "surefoot.http"))
    first_worker = connector_worker(crash_once_recorded=True)
    request = {"method": "POST", "url": fake_api.url("/charges"), "dedupe": True}
    run_id = start_run(stub, "charge", request)

    (received,) = assert_eventually(lambda: fake_api.received("/charges"))
    key = received.headers["idempotency-key"]
    hold.set()  # the API answers; the worker records it and dies before reporting it

    def recorded_completed() -> bool:
        recorded = read_record(control_plane.database_url, key)
        return recorded is not None and recorded.state == COMPLETED

    assert_eventually(recorded_completed, message="the worker recorded the answer")
    assert_eventually(lambda: not first_worker.running, message="the worker died")
    control_plane.restart()
    second_worker = connector_worker()

    run = wait_for_status(control_plane.stub, run_id, "COMPLETED")
    assert payload_value(run.output)["body"] == {"charge": "ch_1"}
    assert len(fake_api.received("/charges")) == 1
    events = history(control_plane.stub, run_id)
    assert [e.attempt for e in events_of(events, "ATTEMPT_LOST")] == [1]
    assert [e.attempt for e in events_of(events, "ATTEMPT_COMPLETED")] == [2]
    assert "replaying the outcome attempt 1 recorded" in second_worker.stderr()


def test_a_call_that_ends_while_the_control_plane_is_down_is_never_made_twice(
    control_plane: ControlPlane, connector_worker: StartConnectorWorker, fake_api: FakeApi
) -> None:
    """The outcome cannot be recorded while the control plane is down, so the worker waits
    for it to come back. Meanwhile the lease ran out and the retry may ask first: it then
    finds the call STARTED and goes to a human. Either way the API is called once."""
    hold = threading.Event()
    fake_api.script("/charges", Reply(201, {"charge": "ch_1"}, hold=hold))
    stub = control_plane.stub
    register(stub, one_call("charge", "surefoot.http"))
    connector_worker()
    request = {"method": "POST", "url": fake_api.url("/charges"), "dedupe": True}
    run_id = start_run(stub, "charge", request)

    assert_eventually(lambda: fake_api.received("/charges"))
    control_plane.kill()
    hold.set()
    control_plane.restart()

    def settled() -> run_pb2.Run | None:
        run = get_run(control_plane.stub, run_id)
        done = run.status in (run_pb2.RUN_STATUS_COMPLETED, run_pb2.RUN_STATUS_NEEDS_ATTENTION)
        return run if done else None

    run = assert_eventually(settled, timeout=60, message="the run completed or needs attention")
    assert len(fake_api.received("/charges")) == 1
    recorded = read_record(control_plane.database_url, run.steps[0].idempotency_key)
    assert recorded is not None
    if run.status == run_pb2.RUN_STATUS_COMPLETED:
        assert payload_value(run.output)["body"] == {"charge": "ch_1"}
    else:
        assert run.last_error.type == "OutcomeUnknown", run.last_error

    def outcome_recorded() -> bool:
        again = read_record(control_plane.database_url, run.steps[0].idempotency_key)
        assert again is not None
        return again.state == COMPLETED

    # The worker recorded the answer once the control plane was back, whoever asked first.
    assert_eventually(outcome_recorded, message="the outcome was recorded")


@ON_POSTGRES
def test_postgres_smtp_and_webhook_in_one_workflow(
    control_plane: ControlPlane,
    connector_worker: StartConnectorWorker,
    fake_api: FakeApi,
    smtp_sink: SmtpSink,
    app_database: str,
) -> None:
    stub = control_plane.stub
    register(stub, signup())
    connector_worker(SUREFOOT_SECRET_DB_PASSWORD="app-pass")
    fake_api.script("/services/T0/B0/x", Reply(200, "ok"))

    run_id = start_run(
        stub,
        "signup",
        {
            "record": {
                "dsn": app_database.replace("postgres@", "postgres:${secret:db_password}@"),
                "sql": "INSERT INTO signups (email, plan) VALUES (%(email)s, %(plan)s) "
                "RETURNING id, email, signed_up_on",
                "params": {"email": "ops@acme.test", "plan": "team"},
            },
            "mail": {
                "host": "127.0.0.1",
                "port": smtp_sink.port,
                "from": "welcome@surefoot.test",
                "to": ["ops@acme.test"],
                "text": "Your workspace is ready.",
            },
            "notify": {"url": fake_api.url("/services/T0/B0/x"), "username": "surefoot"},
        },
    )

    run = wait_for_status(stub, run_id, "COMPLETED")
    outputs = {s.node_id: payload_value(s.output) for s in run.steps}
    assert outputs["record"]["rows"] == [
        {"id": 1, "email": "ops@acme.test", "signed_up_on": "2026-11-25"}
    ]
    (mail,) = smtp_sink.messages
    assert mail.message["Subject"] == "Welcome, signup #1"
    assert mail.recipients == ["ops@acme.test"]
    assert outputs["mail"]["message_id"] == mail.message["Message-ID"]
    (posted,) = fake_api.received("/services/T0/B0/x")
    assert posted.json() == {"text": "New signup: ops@acme.test", "username": "surefoot"}
    assert payload_value(run.output) == {"status": 200, "body": "ok"}
    with psycopg.connect(app_database) as connection:
        assert connection.execute("SELECT count(*) FROM signups").fetchone() == (1,)


@pytest.fixture
def app_database() -> Iterator[str]:
    """An application's database, apart from Surefoot's, with a `signups` table."""
    require_postgres()
    with fresh_postgres_database() as url:
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(
                "CREATE TABLE signups (id serial PRIMARY KEY, email text NOT NULL, plan text, "
                "signed_up_on date NOT NULL DEFAULT '2026-11-25')"
            )
        yield dsn
