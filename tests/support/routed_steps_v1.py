"""Worker module that implements version "1" of step type `e2e-routed`, and no other.

The tests of step-version routing start a worker of this module and one of its sibling
(routed_steps_v2.py) to see which version a task is handed to. The step records each
execution in the execution log (see steps.py) with the version that served it.

Like steps.py it runs in the worker subprocess and must not import the tests' helpers.
"""

from __future__ import annotations

from typing import Any

from surefoot_worker import StepContext, step

from tests.support.steps import _record

VERSION = "1"


@step("e2e-routed", version=VERSION, idempotency="key")
async def routed(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Says which version of the step type served the task."""
    _record(ctx, input, "started")
    output = {"served_by_version": VERSION, "asked_for": ctx.step_version}
    _record(ctx, input, "returned", output=output)
    return output
