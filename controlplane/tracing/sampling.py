"""The sampling decision of a run's trace, as `OTEL_TRACES_SAMPLER` / `_ARG` make it.

A run's trace id is fixed when it starts, so the decision is a pure function of it: the tasks'
`traceparent` carry the same sampled flag the control plane's own spans get, and a restarted
control plane decides the same. The ratio rule is the OpenTelemetry SDK's (`TraceIdRatioBased`:
the trace id's low 64 bits under rate * 2^64), so the SDK's sampler, configured by the same
variables, agrees span for span. A run's spans have no parent outside Surefoot, so the
`parentbased_*` samplers decide as their root sampler does.
"""

from __future__ import annotations

import functools
import logging
import os

log = logging.getLogger("surefoot.telemetry")

_LOW_64 = (1 << 64) - 1
_RATIO_SAMPLERS = {"traceidratio", "parentbased_traceidratio"}
_OFF_SAMPLERS = {"always_off", "parentbased_always_off"}


def ratio_from(sampler: str, argument: str) -> float:
    """The share of traces sampled by the sampler the variables name (1.0 for one that does not
    decide by trace id, as the SDK's other samplers would say yes to a root span)."""
    name = sampler.strip().lower()
    if name in _OFF_SAMPLERS:
        return 0.0
    if name not in _RATIO_SAMPLERS:
        return 1.0
    try:
        rate = float(argument) if argument.strip() else 1.0
    except ValueError:
        log.warning("OTEL_TRACES_SAMPLER_ARG=%r is not a number: sampling everything", argument)
        return 1.0
    if not 0.0 <= rate <= 1.0:
        log.warning("OTEL_TRACES_SAMPLER_ARG=%r is not in [0, 1]: sampling everything", argument)
        return 1.0
    return rate


@functools.cache
def configured_ratio() -> float:
    """The process's ratio, read once: the environment does not change under a server."""
    return ratio_from(
        os.environ.get("OTEL_TRACES_SAMPLER", ""), os.environ.get("OTEL_TRACES_SAMPLER_ARG", "")
    )


def bound(rate: float) -> int:
    return round(rate * (_LOW_64 + 1))


def sampled_at(trace_id: str, rate: float) -> bool:
    """Whether a trace of this id (32 hex digits) is sampled at `rate`."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return int(trace_id[16:], 16) < bound(rate)


def sampled(trace_id: str) -> bool:
    """Whether the run's trace is sampled under this process's configuration."""
    return sampled_at(trace_id, configured_ratio())


def flags(trace_id: str) -> str:
    """The trace-flags field of a `traceparent` in the run's trace."""
    return "01" if sampled(trace_id) else "00"
