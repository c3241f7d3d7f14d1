"""A step's error may quote a credential (an upstream's reply, a request it echoed): the
control plane's spans mask it as logs do, in the attempt's attributes and status alike, and
the worker's handler span masks it in its status."""

from __future__ import annotations

from surefoot_worker.authoring import definition_from_dict

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import get_run, register, start_run, wait_for_status
from tests.support.workflows import task_node
from tests.telemetry.approved import CONTROL_PLANE, TRACED_STEPS, WORKER
from tests.telemetry.collector import CollectedSpan, SpanStore

SECRET = "s3cr3t-upstream-token"


def failed_attempt(collector: SpanStore, trace_id: str) -> CollectedSpan:
    spans = [
        s
        for s in collector.spans()
        if s.service == CONTROL_PLANE and s.trace_id == trace_id and s.is_error
    ]
    assert len(spans) == 1, spans
    return spans[0]


def test_a_credential_in_a_steps_error_is_masked_in_its_span(
    control_plane: ControlPlane, worker: StartWorker, collector: SpanStore
) -> None:
    stub = control_plane.stub
    definition = {
        "name": "leaky",
        "version": "1",
        "nodes": [task_node("a", None, "input", "traced-sync")],
    }
    register(stub, definition_from_dict(definition))
    worker(module=TRACED_STEPS)
    message = f"upstream refused Authorization: Bearer {SECRET} (api_key={SECRET})"
    run_id = start_run(stub, "leaky", {"fail_times": 1, "error_message": message})
    wait_for_status(stub, run_id, "COMPLETED")
    trace_id = get_run(stub, run_id).trace_id
    span = assert_eventually(lambda: failed_attempt(collector, trace_id), message="the span")
    shown = span.attributes["surefoot.error.message"]
    assert shown == "upstream refused Authorization: Bearer *** (api_key=***)"
    assert SECRET not in span.status_message
    assert "Bearer ***" in span.status_message
    # The worker's handler span of the failed attempt says the same, masked too. (The
    # spans the step's own code makes are the application's: "user work a" records the
    # exception it raised, as the OpenTelemetry SDK does by default.)
    handler = assert_eventually(
        lambda: next(
            s
            for s in collector.spans()
            if s.service == WORKER and s.name.startswith("surefoot.step") and s.is_error
        ),
        message="the worker's handler span",
    )
    assert handler.trace_id == trace_id
    assert "Bearer ***" in handler.status_message
    for other in collector.spans():
        if other.service == CONTROL_PLANE or other.name.startswith("surefoot.step"):
            assert SECRET not in repr(other), (other.service, other.name)
