"""OTEL_TRACES_SAMPLER / _ARG decide a run's trace once, by its trace id: the tasks'
traceparent flag and the control plane's spans agree, and at ratio 0 nothing is exported."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from controlplane.tracing import sampling
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import get_run, register, start_run, wait_for_status
from tests.telemetry.collector import SpanStore
from tests.telemetry.test_tracing import TRACED_STEPS, _seen_by_worker, _three_traced_steps


def test_the_ratio_decision_is_the_sdks_for_every_trace_id() -> None:
    rng = random.Random(7)
    for rate in (0.0, 0.01, 0.25, 0.5, 0.99, 1.0):
        sdk = TraceIdRatioBased(rate)
        for _ in range(2000):
            trace_id = rng.getrandbits(128)
            expected = sdk.should_sample(None, trace_id, "run").decision.is_sampled()
            assert sampling.sampled_at(f"{trace_id:032x}", rate) == expected


@pytest.mark.parametrize(
    ("sampler", "argument", "rate"),
    [
        ("", "", 1.0),
        ("always_on", "", 1.0),
        ("parentbased_always_on", "0", 1.0),
        ("always_off", "", 0.0),
        ("parentbased_always_off", "", 0.0),
        ("traceidratio", "0.25", 0.25),
        ("parentbased_traceidratio", "0", 0.0),
        ("parentbased_traceidratio", "", 1.0),
        ("traceidratio", "half", 1.0),  # not a number: the SDK's default
        ("traceidratio", "2", 1.0),
    ],
)
def test_the_sampler_variables_are_read_as_the_sdk_reads_them(
    sampler: str, argument: str, rate: float
) -> None:
    assert sampling.ratio_from(sampler, argument) == rate


@pytest.mark.parametrize(
    "otel_env",
    [{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}],
)
@pytest.mark.parametrize("otlp_protocol", ["grpc"])
def test_at_ratio_zero_the_tasks_are_not_sampled_and_no_span_is_exported(
    control_plane: ControlPlane,
    worker: StartWorker,
    collector: SpanStore,
    traced_steps_log: Path,
) -> None:
    stub = control_plane.stub
    register(stub, _three_traced_steps())
    traced = worker(module=TRACED_STEPS)
    run_id = start_run(stub, "traced", {"a": {}, "b": {"fail_times": 1}, "c": {}})
    wait_for_status(stub, run_id, "COMPLETED")
    trace_id = get_run(stub, run_id).trace_id
    seen = _seen_by_worker(traced_steps_log, run_id)
    assert len(seen) == 4
    for entry in seen.values():
        assert entry["traceparent"] == f"00-{trace_id}-{entry['traceparent'][36:52]}-00"
    # Stopped cleanly, both flush what they buffered: whatever they had is at the collector.
    traced.process.stop()
    assert control_plane.stop() == 0
    assert collector.spans() == []
