"""What a step handler knows about the attempt it is running."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import MutableMapping
from typing import Any

from surefoot.v1 import common_pb2

from ._payload import encode_json

_step_logger = logging.getLogger("surefoot.step")

# One lock for every context: cancellations and heartbeat details are rare, and a lock (or an
# Event) per context would be allocated on the worker's per-task path for nothing.
_lock = threading.Lock()


class CancellationFlag:
    """Set when the control plane cancels an attempt; readable and waitable from any thread.

    It behaves like a ``threading.Event`` that can only be set, but allocates the event
    only when someone waits on it.
    """

    __slots__ = ("_set", "_event")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        """Whether the attempt has been cancelled."""
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Block the calling thread until cancelled or ``timeout`` seconds pass.

        Meant for plain handlers running in the thread pool; never call it on the event loop.

        Args:
            timeout: Seconds to wait at most; ``None`` waits indefinitely.

        Returns:
            Whether the attempt is cancelled.
        """
        with _lock:
            if self._set:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def set(self) -> None:
        """Mark the attempt cancelled and wake any waiting thread."""
        with _lock:
            self._set = True
            event = self._event
        if event is not None:
            event.set()

    def __bool__(self) -> bool:
        return self._set


class StepContext:
    """The attempt a handler is running, passed as its first argument.

    Attributes:
        task_id: The task (one step of one run); the same across attempts.
        run_id: The workflow run.
        node_id: The node of the workflow definition that runs this step.
        step_type: The step type name.
        step_version: The step type version.
        attempt: The attempt number, starting at 1.
        idempotency_key: The same for every attempt of this step in this run; pass it to
            downstream APIs so that a retried attempt does not repeat their effect.
        workflow_name: The workflow definition's name.
        namespace: The namespace of the run.
        deadline: When the attempt times out (UTC), or ``None`` if only the lease bounds it.
        traceparent: W3C trace context of the attempt's span, for the handler's own spans.
        cancelled: A :class:`CancellationFlag` set when the control plane cancels the attempt.
            Safe to read from any thread; a plain handler can ``ctx.cancelled.wait(timeout)``
            between chunks of work. An async handler is also cancelled with
            ``asyncio.CancelledError``.
    """

    __slots__ = (
        "task_id",
        "run_id",
        "node_id",
        "step_type",
        "step_version",
        "attempt",
        "idempotency_key",
        "workflow_name",
        "namespace",
        "deadline",
        "traceparent",
        "cancelled",
        "_logger",
        "_pending_details",
    )

    def __init__(
        self,
        *,
        task_id: str,
        run_id: str,
        node_id: str,
        step_type: str,
        step_version: str,
        attempt: int,
        idempotency_key: str,
        workflow_name: str,
        namespace: str,
        deadline: datetime.datetime | None = None,
        traceparent: str = "",
    ) -> None:
        self.task_id = task_id
        self.run_id = run_id
        self.node_id = node_id
        self.step_type = step_type
        self.step_version = step_version
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.workflow_name = workflow_name
        self.namespace = namespace
        self.deadline = deadline
        self.traceparent = traceparent
        self.cancelled = CancellationFlag()
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None
        self._pending_details: common_pb2.Payload | None = None

    @property
    def is_cancelled(self) -> bool:
        """Whether the control plane has cancelled this attempt."""
        return self.cancelled.is_set()

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger (``surefoot.step``) whose records name the step, attempt, task and run."""
        # Built on first use: most handlers never log and the worker creates one context
        # per task on its hot path.
        if self._logger is None:
            self._logger = _StepLoggerAdapter(
                _step_logger,
                {
                    "task_id": self.task_id,
                    "run_id": self.run_id,
                    "step_type": self.step_type,
                    "attempt": self.attempt,
                },
            )
        return self._logger

    def heartbeat(self, details: Any = None) -> None:
        """Report progress on a long step.

        While the worker is connected it extends the lease of every in-flight attempt on its
        own, so calling this is only needed to record progress details, which the control
        plane keeps with the attempt. Details are sent with the next periodic heartbeat; a
        later call before then replaces them. Safe to call from the handler's thread or
        from the event loop.

        Args:
            details: A JSON-serializable progress value, or ``None`` for none.

        Raises:
            TypeError: If the details cannot be represented as JSON.
        """
        if details is None:
            return
        payload = encode_json(details)
        # A lock, not the event loop, guards the details because plain handlers call this
        # from thread-pool threads while the loop takes them.
        with _lock:
            self._pending_details = payload

    def _take_details(self) -> common_pb2.Payload | None:
        with _lock:
            payload, self._pending_details = self._pending_details, None
        return payload

    def __repr__(self) -> str:
        return (
            f"StepContext(step_type={self.step_type!r}, task_id={self.task_id!r}, "
            f"run_id={self.run_id!r}, attempt={self.attempt})"
        )


class _StepLoggerAdapter(logging.LoggerAdapter[logging.Logger]):
    """Appends the attempt's identity to each message and puts it in ``extra``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        suffix = (
            f" (step {extra['step_type']} attempt {extra['attempt']}, "
            f"task {extra['task_id']}, run {extra['run_id']})"
        )
        return f"{msg}{suffix}", kwargs
