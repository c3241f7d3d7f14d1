"""The worker: one stream to the control plane, tasks in, results out.

This module holds the stream side: the Hello, reconnects, credits, heartbeats, drains and
results kept until acknowledged. Running the handlers themselves is ``_execution.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any

import grpc
from surefoot.v1 import worker_service_pb2 as pb
from surefoot.v1 import worker_service_pb2_grpc as pb_grpc

from . import _outcome
from ._channel import DEFAULT_MAX_MESSAGE_BYTES, ChannelSettings
from ._errors import WorkerRejected
from ._execution import AttemptKey, StepRunner
from ._reconnect import DEFAULT_MAX_RECONNECT_DELAY, OutageLog, ReconnectBackoff
from ._results import UnackedResults
from ._step import StepDefinition
from ._stream import CLOSE_GRACE, MAX_COALESCED, Session, coalesce_results

logger = logging.getLogger("surefoot.worker")

SDK_NAME = "python/0.1"
SHUTDOWN_REASON = "worker shutting down"

# After the last result is sent, how long a draining worker waits for its Ack: long enough
# for one database commit on a busy control plane, short enough not to stall a deploy.
_ACK_GRACE = 2.0
# Used only if the Welcome names neither a heartbeat interval nor a lease.
_DEFAULT_HEARTBEAT_INTERVAL = 10.0
# Codes with which the control plane refuses the Hello itself; reconnecting would be refused
# the same way, so the worker stops and says why.
_REJECTION_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)


class Worker:
    """Runs step handlers for tasks the control plane sends over one stream.

    Use it as an async context manager (the worker runs in the background inside the block
    and drains when it ends) or call :meth:`run` and, from elsewhere, :meth:`shutdown`.

    Args:
        address: The control plane's gRPC address, ``host:port``.
        steps: Step-decorated functions or :class:`StepDefinition` objects.
        namespace: The namespace whose tasks this worker takes.
        concurrency: How many tasks run at once; the credit granted on each stream and the
            size of the thread pool for plain (non-async) handlers.
        worker_id: Shown in attempts; defaults to ``host:pid:random``.
        max_reconnect_delay: The longest wait, in seconds, between two attempts to reach the
            control plane after losing it (0.1 to 300). The waits start at 0.1 s and double
            up to it, and start over once a stream is welcomed; the channel's own connection
            backoff is capped to it too, so that a control plane listening again is reached
            within about that long. Raise it to spare a control plane that thousands of
            workers reconnect to at once.
        drain_timeout: How long a graceful shutdown waits for in-flight handlers before it
            hands their tasks back.
        token: Bearer token of a worker credential, sent on the stream ("" for none: dev
            mode or a server started with ``--no-auth``).
        tls_ca: PEM bundle of the CAs that sign the server's certificate; turns TLS on.
        tls_cert: PEM client certificate for mutual TLS (with ``tls_key``).
        tls_key: PEM private key of ``tls_cert``.
        tls_server_name: The name the server's certificate is checked against, instead of
            the address's host.
        max_message_bytes: The largest message sent or received (the server's limit): an
            output larger than that fails its attempt instead of breaking the stream.

    Raises:
        TypeError: If an entry of ``steps`` is not a step.
        ValueError: If ``steps`` is empty or declares a step type twice, a number is out of
            range, or the token or TLS options are unusable (a file that cannot be read).
    """

    def __init__(
        self,
        address: str,
        steps: Sequence[Callable[..., Any] | StepDefinition],
        *,
        namespace: str = "default",
        concurrency: int = 100,
        worker_id: str | None = None,
        max_reconnect_delay: float = DEFAULT_MAX_RECONNECT_DELAY,
        drain_timeout: float = 30.0,
        token: str = "",
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_server_name: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if callable(steps) or isinstance(steps, StepDefinition):
            raise TypeError("steps must be a list of step functions, not a single step")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if drain_timeout < 0:
            raise ValueError(f"drain_timeout must be >= 0, got {drain_timeout}")
        self._definitions: dict[tuple[str, str], StepDefinition] = {}
        for obj in steps:
            definition = StepDefinition.of(obj)
            if definition is None:
                raise TypeError(f"{obj!r} is not a step: decorate it with @step(idempotency=...)")
            existing = self._definitions.get(definition.key)
            if existing is not None and existing is not definition:
                raise ValueError(f"step {definition.name}@{definition.version} is declared twice")
            self._definitions[definition.key] = definition
        if not self._definitions:
            raise ValueError("a worker needs at least one step")

        self._channel_settings = ChannelSettings(
            token=token,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_server_name=tls_server_name,
            max_message_bytes=max_message_bytes,
            max_reconnect_delay=max_reconnect_delay,
        )
        # Checks max_reconnect_delay too: the channel's backoff is derived from it.
        self._channel = self._channel_settings.checked()
        # What one result may take of a message, leaving room for the message's framing.
        self._max_result_bytes = max_message_bytes - 1024
        self._address = address
        self._namespace = namespace
        self._concurrency = concurrency
        self._worker_id = (
            worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        )
        self._max_reconnect_delay = max_reconnect_delay
        self._drain_timeout = drain_timeout

        self._runner = StepRunner(
            self._definitions,
            concurrency=concurrency,
            namespace=namespace,
            worker_id=self._worker_id,
            on_slot_freed=self._return_owed_slot,
            on_result=self._record,
        )
        self._results = UnackedResults()
        self._session: Session | None = None
        # The last stream the control plane welcomed: the next Hello names it, so that the
        # leases of the tasks still running here (or whose results await an Ack) move to
        # the new stream, which alone may then report them.
        self._last_session_id = ""
        self._accepting = True
        self._closing = False
        self._connected = asyncio.Event()
        self._shutdown_requested = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None

    @property
    def worker_id(self) -> str:
        """The id sent in the Hello and shown in attempts."""
        return self._worker_id

    @property
    def address(self) -> str:
        """The control plane's address."""
        return self._address

    @property
    def steps(self) -> tuple[StepDefinition, ...]:
        """The step types this worker declares, in the order given."""
        return tuple(self._definitions.values())

    @property
    def _tracer(self) -> Any:
        """The handlers' tracer, None when tracing is off."""
        return self._runner.tracer

    async def __aenter__(self) -> Worker:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()
        task = self._run_task
        if task is not None and task.done() and not task.cancelled():
            error = task.exception()  # retrieved in every case, so asyncio does not warn
            if error is not None and exc_type is None:
                raise error

    async def run(self) -> None:
        """Run until :meth:`shutdown` finishes draining. Calling it again waits for the same run.

        Cancelling the task that awaits it stops the worker at once, without draining: the
        control plane gives its unfinished tasks to another worker when their leases expire.

        Raises:
            WorkerRejected: If the control plane refuses the worker's Hello.
        """
        await self._start()

    async def shutdown(self) -> None:
        """Drain gracefully and wait until the worker has stopped. Safe to call repeatedly.

        The worker tells the control plane it is draining, takes no new tasks, waits up to
        ``drain_timeout`` for handlers in flight, hands back those still running, waits
        briefly for the Acks of its results and closes the stream.
        """
        self._shutdown_requested.set()
        if self._run_task is None:
            self._runner.release()
            return
        await asyncio.wait({self._run_task})

    async def wait_until_connected(self) -> None:
        """Return once the control plane has welcomed the worker for the first time."""
        await self._connected.wait()

    def _start(self) -> asyncio.Task[None]:
        if self._run_task is None:
            self._run_task = asyncio.get_running_loop().create_task(self._run())
        return self._run_task

    async def _run(self) -> None:
        if self._shutdown_requested.is_set():
            self._runner.release()
            return
        channel = self._channel.open(self._address)
        stub: pb_grpc.WorkerServiceAsyncStub = pb_grpc.WorkerServiceStub(channel)
        connection = asyncio.create_task(self._maintain_connection(channel, stub))
        stop = asyncio.create_task(self._shutdown_requested.wait())
        try:
            await asyncio.wait({connection, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not connection.done():
                await self._drain(connection)
            if connection.done():
                connection.result()  # raises WorkerRejected
        finally:
            stop.cancel()
            self._closing = True
            await self._stop_connection(connection)
            await self._runner.abandon()
            self._runner.release()
            await channel.close(grace=None)
            if len(self._results):
                logger.warning(
                    "stopped with %d result(s) not acknowledged; the control plane will run "
                    "those steps again when their leases expire",
                    len(self._results),
                )

    async def _maintain_connection(
        self, channel: grpc.aio.Channel, stub: pb_grpc.WorkerServiceAsyncStub
    ) -> None:
        backoff = ReconnectBackoff(self._max_reconnect_delay)
        outage = OutageLog(logger, self._address, self._max_reconnect_delay)
        while not self._closing:
            session = Session()
            problem: str | None = None
            try:
                await self._run_session(stub, session)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code in _REJECTION_CODES:
                    raise WorkerRejected(_one_line(exc.details()) or code.name) from None
                problem = f"{code.name}: {_one_line(exc.details())}"
            if self._closing:
                return
            if session.welcomed:
                backoff.reset()
            wait = backoff.next_delay()
            outage.stream_ended(
                welcomed=session.welcomed, draining=session.draining, problem=problem, wait=wait
            )
            await _until_reachable(channel, wait)

    async def _run_session(self, stub: pb_grpc.WorkerServiceAsyncStub, session: Session) -> None:
        session.send(pb.WorkerMessage(hello=self._hello()))
        if self._accepting:
            # Handlers of the previous stream may still be running: granting the full
            # concurrency again would run more than `concurrency` tasks at once.
            session.owed = set(self._runner.in_flight)
            session.send(pb.WorkerMessage(credit=pb.Credit(n=self._window(session))))
        else:
            session.send(pb.WorkerMessage(draining=pb.Draining()))
        # Queued before the session becomes current, with no await in between, so that a
        # result finishing meanwhile is neither lost nor sent twice.
        for result in self._results.pending():
            session.send(result)
        self._session = session
        call = stub.Connect(
            self._requests(session, self._max_result_bytes),
            metadata=self._channel_settings.metadata,
        )
        session.call = call
        try:
            async for message in call:
                self._on_message(session, message)
        except asyncio.CancelledError:
            # gRPC raises CancelledError for a call cancelled locally; that is how a session
            # whose half-close was not answered ends. Any other cancellation is ours.
            current = asyncio.current_task()
            if not session.call_cancelled or (current is not None and current.cancelling()):
                raise
        finally:
            if self._session is session:
                self._session = None
            session.dispose()
            if not call.done():
                call.cancel()

    def _hello(self) -> pb.Hello:
        return pb.Hello(
            namespace=self._namespace,
            worker_id=self._worker_id,
            step_types=[d.to_proto() for d in self._definitions.values()],
            concurrency=self._concurrency,
            sdk=SDK_NAME,
            resume_session_ids=[self._last_session_id] if self._last_session_id else [],
        )

    @staticmethod
    async def _requests(session: Session, max_bytes: int) -> AsyncIterator[pb.WorkerMessage]:
        outbox = session.outbox
        while True:
            message = await outbox.get()
            if message is None:
                return
            # Results queued behind this one go in the same message: under load a gRPC
            # message per result would cost both processes more than the steps themselves.
            pending: list[pb.WorkerMessage | None] = [message]
            while not outbox.empty() and len(pending) < MAX_COALESCED:
                pending.append(outbox.get_nowait())
            for item in coalesce_results(pending, max_bytes):
                if item is None:
                    return
                yield item

    def _on_message(self, session: Session, message: pb.ServerMessage) -> None:
        kind = message.WhichOneof("message")
        if kind == "tasks":
            for task in message.tasks.tasks:
                self._on_task(session, task)
        elif kind == "ack":
            self._results.acknowledge(list(message.ack.task_ids))
        elif kind == "cancel":
            self._on_cancel(message.cancel)
        elif kind == "welcome":
            self._on_welcome(session, message.welcome)
        elif kind == "drain":
            self._on_drain(session, message.drain.reason)
        elif kind == "refused":
            self._on_refused(message.refused)
        else:
            logger.debug("ignoring a server message of unknown kind %r", kind)

    def _on_welcome(self, session: Session, welcome: pb.Welcome) -> None:
        if session.welcomed:
            return
        session.welcomed = True
        self._last_session_id = welcome.session_id
        interval = welcome.heartbeat_interval_seconds
        if interval <= 0:
            interval = welcome.lease_seconds / 3 if welcome.lease_seconds > 0 else 0.0
        interval = interval or _DEFAULT_HEARTBEAT_INTERVAL
        session.spawn(self._heartbeat_loop(session, interval))
        first = not self._connected.is_set()
        self._connected.set()
        # The session id is a secret (it takes the stream's leases over): never logged.
        logger.info(
            "%s to %s as %s (lease %.1fs, heartbeat every %.1fs, %d unacked result(s))",
            "connected" if first else "reconnected",
            self._address,
            self._worker_id,
            welcome.lease_seconds,
            interval,
            len(self._results),
        )

    def _on_task(self, session: Session, task: pb.Task) -> None:
        key = (task.task_id, task.attempt)
        if key in self._runner.in_flight or self._results.contains(*key):
            # Redelivered after a reconnect: the attempt is running here or its result is
            # on its way, so running it again would only duplicate its effects.
            logger.debug("ignoring duplicate task %s attempt %d", task.task_id, task.attempt)
            return
        if not self._accepting or session.draining:
            reason = SHUTDOWN_REASON if not self._accepting else "worker draining"
            self._record(key, _outcome.handed_back(task.task_id, task.attempt, reason))
            return
        refusal = self._runner.start(task)
        if refusal is not None:
            self._record(key, refusal)

    def _window(self, session: Session) -> int:
        """The stream's window (Credit replaces it): the concurrency less the attempts of an
        earlier stream still running here, which may not count on this one."""
        return max(0, self._concurrency - len(session.owed))

    def _return_owed_slot(self, key: AttemptKey) -> None:
        session = self._session
        if session is not None and key in session.owed:
            session.owed.discard(key)
            if self._accepting and not session.draining:
                session.send(pb.WorkerMessage(credit=pb.Credit(n=self._window(session))))

    def _on_refused(self, refused: pb.Refused) -> None:
        # This stream does not hold the task's lease (it went to another worker, or the
        # result was recorded already): its result will never be accepted, so it is
        # forgotten rather than resent, and work on the task stops.
        logger.warning(
            "the control plane refused a report for task %s: %s",
            refused.task_id,
            refused.reason or "no reason given",
        )
        self._results.acknowledge([refused.task_id])
        self._runner.cancel(refused.task_id, f"refused by the control plane: {refused.reason}")

    def _on_cancel(self, cancel: pb.Cancel) -> None:
        if not self._runner.cancel(cancel.task_id, cancel.reason):
            logger.debug("cancel for task %s, which is not running here", cancel.task_id)

    def _on_drain(self, session: Session, reason: str) -> None:
        if session.draining:
            return
        session.draining = True
        # Says so back: no task is to come on this stream (the control plane sends none
        # after Drain anyway), and its window is closed.
        session.send(pb.WorkerMessage(draining=pb.Draining()))
        logger.info(
            "control plane asked to drain (%s); finishing %d step(s), then reconnecting",
            reason or "no reason given",
            len(self._runner.in_flight),
        )
        session.spawn(self._finish_drained_session(session))

    async def _finish_drained_session(self, session: Session) -> None:
        # Steps still running after the timeout keep running: their results go out on the
        # next stream, which the control plane accepts while the attempt is current.
        try:
            await asyncio.wait_for(self._runner.idle.wait(), self._drain_timeout)
            await asyncio.wait_for(self._results.wait_empty(), _ACK_GRACE)
        except TimeoutError:
            pass
        session.close()

    async def _heartbeat_loop(self, session: Session, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            attempts = self._runner.running()
            if not attempts:
                continue
            # One message for all leases: a worker with 100 steps in flight sends one
            # heartbeat per interval, not 100.
            task_ids = list(dict.fromkeys(a.context.task_id for a in attempts))
            # Each task's own progress details, in the same message.
            progress = [
                pb.TaskProgress(task_id=a.context.task_id, details=details)
                for a in attempts
                if (details := a.context._take_details()) is not None
            ]
            session.send(
                pb.WorkerMessage(heartbeat=pb.Heartbeat(task_ids=task_ids, progress=progress))
            )

    def _record(self, key: AttemptKey, message: pb.WorkerMessage) -> None:
        """Keep a result until acknowledged, and send it now if a stream is open."""
        size = message.ByteSize()
        if size > self._max_result_bytes:
            # Sent as it is, it would break the stream, and again on every reconnect.
            message = _outcome.failed_with(
                key[0],
                key[1],
                error_type="OutputTooLarge",
                message=f"the step's result is {size} bytes, more than the "
                f"{self._max_result_bytes} a message may carry",
                retryable=False,
            )
        self._results.add(key[0], key[1], message)
        if self._session is not None:
            self._session.send(message)

    async def _drain(self, connection: asyncio.Task[None]) -> None:
        self._accepting = False
        logger.info(
            "draining: waiting up to %gs for %d step(s) in flight",
            self._drain_timeout,
            len(self._runner.in_flight),
        )
        if self._session is not None:
            self._session.send(pb.WorkerMessage(draining=pb.Draining()))
        await _wait_unless_done(self._runner.idle.wait(), connection, self._drain_timeout)
        still_running = self._runner.hand_back_all()
        for key in still_running:
            self._record(key, _outcome.handed_back(key[0], key[1], SHUTDOWN_REASON))
        if still_running:
            logger.warning(
                "handed back %d step(s) still running after %gs",
                len(still_running),
                self._drain_timeout,
            )
        await _wait_unless_done(self._results.wait_empty(), connection, _ACK_GRACE)

    async def _stop_connection(self, connection: asyncio.Task[None]) -> None:
        session = self._session
        if session is not None and not connection.done():
            session.close()
            await asyncio.wait({connection}, timeout=CLOSE_GRACE + 0.5)
        connection.cancel()
        await asyncio.gather(connection, return_exceptions=True)


async def _wait_unless_done(
    awaitable: Coroutine[Any, Any, Any], guard: asyncio.Task[None], timeout: float
) -> None:
    """Wait for ``awaitable`` up to ``timeout``, giving up early if ``guard`` finishes."""
    waiter = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({waiter, guard}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def _until_reachable(channel: grpc.aio.Channel, wait: float) -> None:
    """Wait `wait` seconds, or only until the channel connects if it is not connected now."""
    if channel.get_state() is grpc.ChannelConnectivity.READY:
        # The control plane answered and then ended or refused the stream: back off from it
        # rather than call again at once.
        await asyncio.sleep(wait)
        return
    # It could not be reached: the channel keeps trying on its own (capped) backoff, and a
    # stream opened the moment it connects is up to a whole wait sooner.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(channel.channel_ready(), wait)


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())
