"""Running step handlers: one asyncio task per attempt, plain handlers on a thread pool.

The stream side (``_worker.py``) decides which tasks to take; this module runs them and
reports each outcome through two callbacks, without knowing about streams or credits.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from surefoot.v1 import common_pb2
from surefoot.v1 import worker_service_pb2 as pb

from . import _outcome, _tracing
from ._context import StepContext
from ._payload import decode_json
from ._step import StepDefinition

logger = logging.getLogger("surefoot.worker")

# How long a hard stop waits for cancelled handlers to unwind.
_CANCEL_GRACE = 1.0

AttemptKey = tuple[str, int]  # (task_id, attempt): the identity of one try of a step


@dataclass(eq=False)
class Attempt:
    """A task being run by a handler."""

    definition: StepDefinition
    context: StepContext
    handler_task: asyncio.Task[None] | None = None
    # Set when the worker gave the attempt back: whatever the handler does next is dropped.
    handed_back: bool = False
    cancel_reason: str = ""


SlotFreed = Callable[[AttemptKey], None]
"""Called when an attempt stops running, whatever its outcome (even with none to report)."""

ResultReady = Callable[[AttemptKey, pb.WorkerMessage], None]
"""Called with an attempt's Complete or Fail, unless the attempt was handed back meanwhile."""


class StepRunner:
    """The attempts running in this process, and the means to run and stop them.

    Args:
        definitions: The declared steps by ``(name, version)``.
        concurrency: The size of the thread pool for plain handlers, so that every credited
            task can run at once.
        namespace: Used in a step's context when the task names none.
        worker_id: Named in the error of a task for a step this worker does not declare.
        on_slot_freed: See :data:`SlotFreed`.
        on_result: See :data:`ResultReady`.
    """

    def __init__(
        self,
        definitions: dict[tuple[str, str], StepDefinition],
        *,
        concurrency: int,
        namespace: str,
        worker_id: str,
        on_slot_freed: SlotFreed,
        on_result: ResultReady,
    ) -> None:
        self._definitions = definitions
        self._namespace = namespace
        self._worker_id = worker_id
        self._on_slot_freed = on_slot_freed
        self._on_result = on_result
        self._executor: ThreadPoolExecutor | None = None
        if any(not d.is_async for d in definitions.values()):
            self._executor = ThreadPoolExecutor(
                max_workers=concurrency, thread_name_prefix="surefoot-step"
            )
        self.in_flight: dict[AttemptKey, Attempt] = {}
        self.idle = asyncio.Event()
        self.idle.set()
        # None unless the application traces with OpenTelemetry (or OTEL_* asks for export).
        self.tracer: Any = _tracing.tracer()

    def start(self, task: pb.Task) -> pb.WorkerMessage | None:
        """Start running ``task``; or return its Fail at once if no declared step matches."""
        key = (task.task_id, task.attempt)
        definition = self._definition_for(task)
        if definition is None:
            return self._unknown_step(task)
        attempt = Attempt(definition=definition, context=self._context_for(task, definition))
        self.in_flight[key] = attempt
        self.idle.clear()
        payload = task.input if task.HasField("input") else None
        attempt.handler_task = asyncio.get_running_loop().create_task(
            self._execute(key, attempt, payload)
        )
        return None

    def running(self) -> list[Attempt]:
        """The attempts whose outcome this worker will still report."""
        return [a for a in self.in_flight.values() if not a.handed_back]

    def cancel(self, task_id: str, reason: str) -> bool:
        """Deliver the control plane's Cancel to the attempts of ``task_id``; False if none runs."""
        found = False
        for (running_id, _), attempt in self.in_flight.items():
            if running_id != task_id or attempt.handed_back:
                continue
            found = True
            attempt.cancel_reason = reason
            attempt.context.cancelled.set()
            # A thread cannot be interrupted; a plain handler sees ctx.cancelled instead.
            if attempt.definition.is_async and attempt.handler_task is not None:
                attempt.handler_task.cancel()
        return found

    def hand_back_all(self) -> list[AttemptKey]:
        """Give up every running attempt: its outcome is dropped, its handler told to stop."""
        keys = list(self.in_flight)
        self._stop(self.in_flight.values())
        return keys

    async def abandon(self) -> None:
        """Give up every running attempt and wait briefly for the handlers to unwind."""
        attempts = list(self.in_flight.values())
        self._stop(attempts)
        tasks = [a.handler_task for a in attempts if a.handler_task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=_CANCEL_GRACE)

    def release(self) -> None:
        """Shut the thread pool down; call once the worker has stopped."""
        if self._executor is not None:
            # Threads cannot be stopped; wait=False lets the process exit path decide.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @staticmethod
    def _stop(attempts: Iterable[Attempt]) -> None:
        for attempt in attempts:
            attempt.handed_back = True
            attempt.context.cancelled.set()
            if attempt.handler_task is not None:
                attempt.handler_task.cancel()

    def _definition_for(self, task: pb.Task) -> StepDefinition | None:
        definition = self._definitions.get((task.step_type, task.step_version))
        if definition is None and not task.step_version:
            # A task without a version can only mean the one version this worker declares.
            matches = [d for (name, _), d in self._definitions.items() if name == task.step_type]
            if len(matches) == 1:
                definition = matches[0]
        return definition

    def _unknown_step(self, task: pb.Task) -> pb.WorkerMessage:
        declared = ", ".join(f"{n}@{v}" for n, v in self._definitions)
        logger.error(
            "received task %s for step %s@%s, which this worker does not declare (%s)",
            task.task_id,
            task.step_type,
            task.step_version,
            declared,
        )
        return _outcome.failed_with(
            task.task_id,
            task.attempt,
            error_type="UnknownStepType",
            message=(
                f"worker {self._worker_id} does not implement step "
                f"{task.step_type}@{task.step_version} (it declares {declared})"
            ),
            retryable=False,
        )

    def _context_for(self, task: pb.Task, definition: StepDefinition) -> StepContext:
        return StepContext(
            task_id=task.task_id,
            run_id=task.run_id,
            node_id=task.node_id,
            step_type=task.step_type,
            step_version=task.step_version or definition.version,
            attempt=task.attempt,
            idempotency_key=task.idempotency_key,
            workflow_name=task.workflow_name,
            namespace=task.namespace or self._namespace,
            deadline=(
                task.deadline.ToDatetime(tzinfo=datetime.UTC) if task.HasField("deadline") else None
            ),
            traceparent=task.traceparent,
        )

    async def _execute(
        self, key: AttemptKey, attempt: Attempt, payload: common_pb2.Payload | None
    ) -> None:
        try:
            if self.tracer is None:
                result = await self._call_handler(attempt, payload)
            else:
                with _tracing.attempt_span(self.tracer, attempt.context) as span:
                    result = await self._call_handler(attempt, payload)
                    _tracing.record_outcome(span, result)
        finally:
            del self.in_flight[key]
            if not self.in_flight:
                self.idle.set()
            self._on_slot_freed(key)
        if not attempt.handed_back:
            self._on_result(key, result)

    async def _call_handler(
        self, attempt: Attempt, payload: common_pb2.Payload | None
    ) -> pb.WorkerMessage:
        context = attempt.context
        definition = attempt.definition
        try:
            value = decode_json(payload)
        except ValueError as exc:
            return _outcome.failed_with(
                context.task_id,
                context.attempt,
                error_type="InputNotDecodable",
                message=str(exc),
                retryable=False,
            )
        try:
            if definition.is_async:
                output = await definition.handler(context, value)
            else:
                handler = definition.handler
                if self.tracer is not None:
                    handler = _tracing.in_current_context(handler)
                output = await asyncio.get_running_loop().run_in_executor(
                    self._executor, handler, context, value
                )
        except asyncio.CancelledError:
            if attempt.handed_back or not context.is_cancelled:
                raise  # the worker itself is stopping: nothing to report
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # the cancellation was ours to deliver, and is handled
            return _cancelled(attempt)
        except Exception as exc:
            if context.is_cancelled:
                return _cancelled(attempt)
            return _outcome.failed(context.task_id, context.attempt, exc)
        # A handler that finished despite a Cancel reports its output: its effects happened,
        # and the control plane records the result as ignored if it no longer wants it.
        return _outcome.completed(context.task_id, context.attempt, output)


def _cancelled(attempt: Attempt) -> pb.WorkerMessage:
    return _outcome.failed_with(
        attempt.context.task_id,
        attempt.context.attempt,
        error_type="Cancelled",
        message=attempt.cancel_reason or "cancelled by the control plane",
        retryable=False,
    )
