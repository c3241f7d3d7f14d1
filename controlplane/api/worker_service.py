"""surefoot.v1.WorkerService: one bidirectional stream per worker process.

The stream's reader turns worker messages into committer operations; the writer sends what
the committer queued for this session (tasks, acks, cancels, refusals). Nothing here is
needed for correctness after a crash: leases in the database are the truth (law 1, law 9).

Trust: the stream's credential is checked before its Hello is read, and it must hold the
`worker` role in the Hello's namespace (and, if limited to step types, declare only those);
results and heartbeats are bound to the leases the stream holds (see
`dispatch.operations.record_result`); `stream_limits` bounds what one stream may send.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Protocol

import grpc
from sqlalchemy import Connection, Engine, select
from surefoot.v1 import common_pb2, worker_service_pb2_grpc
from surefoot.v1 import worker_service_pb2 as wpb

from controlplane import errors
from controlplane.api.namespaces import DEFAULT, checked_namespace
from controlplane.api.payloads import parse_json
from controlplane.api.principal import ANY_NAMESPACE, Caller, Role
from controlplane.api.stream_limits import StreamLimits
from controlplane.dispatch import operations as ops
from controlplane.dispatch.committer import Committer
from controlplane.dispatch.sessions import WorkerSession
from controlplane.engine import checks
from controlplane.engine.definition import NAME_PATTERN, VERSION_PATTERN
from controlplane.store.schema import definitions
from controlplane.store.step_types import StepCatalogCache, upsert_step_types

log = logging.getLogger("surefoot.workers")

MAX_CREDIT = 10_000


class CallerSource(Protocol):
    """Who calls (the server's authenticator)."""

    async def caller(self, context: grpc.aio.ServicerContext) -> Caller: ...


class WorkerService(worker_service_pb2_grpc.WorkerServiceServicer):
    def __init__(
        self,
        engine: Engine,
        committer: Committer,
        catalog: StepCatalogCache,
        auth: CallerSource,
        *,
        lease_seconds: float,
        heartbeat_interval: float,
        limits: StreamLimits | None = None,
    ) -> None:
        self._engine = engine
        self._committer = committer
        self._catalog = catalog
        self._auth = auth
        self._lease = lease_seconds
        self._heartbeat = heartbeat_interval
        self._limits = limits or StreamLimits()
        self._streams: set[WorkerSession] = set()
        self.stopping = False
        # Results and heartbeats refused on streams that have ended (a live stream counts
        # its own in `WorkerSession.refused`).
        self.refused_on_closed_streams = 0

    @property
    def refused(self) -> int:
        """Results and heartbeats refused on this server's worker streams so far."""
        return self.refused_on_closed_streams + sum(s.refused for s in list(self._streams))

    async def Connect(
        self,
        request_iterator: AsyncIterator[wpb.WorkerMessage],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[wpb.ServerMessage]:
        # Before a message is read: a stream without a valid credential writes nothing.
        caller = await self._auth.caller(context)
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("message") != "hello":
            raise errors.InvalidArgument.field(
                "hello", "the first message on a stream must be Hello"
            )
        hello = first.hello
        namespace = worker_namespace(caller, hello.namespace)
        caller.require(namespace, Role.WORKER)
        self._limits.check_hello(len(hello.step_types), list(hello.resume_session_ids))
        _check_hello(hello)
        _check_allowed_step_types(caller, hello)
        await asyncio.to_thread(self._register_step_types, namespace, hello, caller)
        # The Welcome's session id is a secret, random (128 bits) and told only to this
        # stream: naming it in a later Hello proves the worker held its leases. The id the
        # leases are kept under is derived from it and the credential, so that a secret seen
        # by anybody else (or an id read from the log or the database) resumes nothing.
        secret = secrets.token_hex(16)
        session = WorkerSession(
            id=lease_holder(caller.principal, namespace, secret),
            namespace=namespace,
            worker_id=hello.worker_id,
            implements=frozenset((d.name, d.version) for d in hello.step_types),
            loop=asyncio.get_running_loop(),
            outbound=asyncio.Queue(),
            principal=caller.principal,
        )
        resume = tuple(
            dict.fromkeys(
                lease_holder(caller.principal, namespace, storable(s))
                for s in hello.resume_session_ids
            )
        )
        resumed = await self._committer.submit(ops.OpenSession(session, resume))
        self._streams.add(session)
        log.info(
            "worker %s connected as %s in namespace %s (session %s%s)",
            hello.worker_id,
            caller.principal,
            namespace,
            session.id,
            f", {resumed} lease(s) taken over from earlier streams" if resumed else "",
        )
        reader = asyncio.create_task(self._read(request_iterator, session))
        reader.add_done_callback(lambda _: session.send(None))
        try:
            yield wpb.ServerMessage(
                welcome=wpb.Welcome(
                    session_id=secret,
                    lease_seconds=self._lease,
                    heartbeat_interval_seconds=self._heartbeat,
                )
            )
            while True:
                message = await session.outbound.get()
                if message is None:
                    break
                yield message
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                # A message the reader refused (bad input) ends the stream with its status.
                raise reader.exception()  # type: ignore[misc]
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            self._streams.discard(session)
            self._committer.post(
                ops.CloseSession(session.id, "stream closed", release_leases=not self.stopping)
            )
            # Read after the close is queued: a refusal still in the committer's queue may
            # be missing from this line (it stays in `session.refused`).
            self.refused_on_closed_streams += session.refused
            log.info(
                "worker %s (%s) disconnected (session %s, %d result(s) refused)",
                hello.worker_id,
                session.principal,
                session.id,
                session.refused,
            )

    def _register_step_types(self, namespace: str, hello: wpb.Hello, caller: Caller) -> None:
        with self._engine.begin() as connection:
            _check_namespace_known(connection, namespace, caller)
            upsert_step_types(connection, namespace, hello.step_types)
        self._catalog.remember(namespace, hello.step_types)

    async def _read(
        self, request_iterator: AsyncIterator[wpb.WorkerMessage], session: WorkerSession
    ) -> None:
        post = self._committer.post
        bucket = self._limits.bucket()
        window = 0
        async for message in request_iterator:
            # Any message says the worker is there; kept in memory only (a float per
            # message), written with the session's periodic confirmation.
            session.heard_at = time.time()
            # Past the limit the stream ends RESOURCE_EXHAUSTED (the reader's exception is
            # the stream's status); its leases go to other workers as on any close.
            bucket.take()
            kind = message.WhichOneof("message")
            if kind == "complete":
                post(self._completed(session, message.complete))
            elif kind == "fail":
                post(self._failed(session, message.fail))
            elif kind == "results":
                for done in message.results.completes:
                    post(self._completed(session, done))
                for failed in message.results.fails:
                    post(self._failed(session, failed))
            elif kind == "hand_back":
                back = message.hand_back
                post(
                    ops.RecordResult(
                        session.id,
                        session.worker_id,
                        storable(back.task_id),
                        "hand_back",
                        reason=storable(back.reason),
                        attempt=back.attempt,
                    )
                )
            elif kind == "credit":
                # The window itself, not an increment: a repeated Credit replaces it.
                n = _checked_credit(message.credit.n)
                if n != window:
                    window = n
                    post(ops.GrantCredit(session.id, n))
            elif kind == "heartbeat":
                beat = message.heartbeat
                task_ids = list(dict.fromkeys(storable(t) for t in beat.task_ids))
                details = _details(beat)
                task_ids += [t for t in details if t not in task_ids]
                if task_ids:
                    post(ops.ExtendLeases(session.id, task_ids, details))
            elif kind == "draining":
                post(ops.StartDraining(session.id))
            elif kind == "hello":
                raise errors.InvalidArgument.field(
                    "hello", "a stream takes one Hello, its first message; this is a second one"
                )

    @staticmethod
    def _completed(session: WorkerSession, done: wpb.Complete) -> ops.RecordResult:
        task_id = storable(done.task_id)
        try:
            output = parse_json("output", done.output)
        except errors.InvalidArgument as exc:
            # The step ran, but what it returned cannot be kept as it is: the attempt fails
            # (never stored as something else), and a person decides, since running it
            # again would most likely return the same.
            error = {
                "type": "UndecodableOutput",
                "message": "; ".join(f"{where} {why}" for where, why in exc.violations),
                "retryable": False,
                "details": "",
            }
            return ops.RecordResult(
                session.id, session.worker_id, task_id, "fail", error=error, attempt=done.attempt
            )
        return ops.RecordResult(
            session.id, session.worker_id, task_id, "complete", output=output, attempt=done.attempt
        )

    @staticmethod
    def _failed(session: WorkerSession, failed: wpb.Fail) -> ops.RecordResult:
        error = {
            "type": storable(failed.error_type) or "Error",
            "message": storable(failed.message),
            "retryable": failed.retryable,
            "details": storable(failed.details),
        }
        if failed.retry_after_seconds > 0:
            error["retry_after"] = failed.retry_after_seconds
        return ops.RecordResult(
            session.id,
            session.worker_id,
            storable(failed.task_id),
            "fail",
            error=error,
            attempt=failed.attempt,
        )

    def drain_all(self, reason: str) -> None:
        """Ask every connected worker to reconnect elsewhere (this server is stopping)."""
        self.stopping = True
        for session in list(self._streams):
            # The committer closes the stream's window and then sends the Drain, so that
            # no task it handed out reaches the worker after it.
            self._committer.post(ops.StartDraining(session.id, drain=reason))


def lease_holder(principal: str, namespace: str, secret: str) -> str:
    """The id a session's leases are kept under (tasks.session_id): only the holder of the
    secret, with the same credential, in the same namespace, arrives at it again."""
    material = "\n".join((principal, namespace, secret)).encode()
    return hashlib.sha256(material).hexdigest()[:32]


def worker_namespace(caller: Caller, requested: str) -> str:
    """The Hello's namespace; when it names none, the credential's only namespace (if it
    has exactly one), else "default"."""
    if not requested:
        own = [n for n in caller.roles if n != ANY_NAMESPACE]
        if len(own) == 1:
            return own[0]
    return checked_namespace(requested)


def _check_namespace_known(connection: Connection, namespace: str, caller: Caller) -> None:
    """A worker works in a namespace that exists: "default", one its credential names (not
    through "*"), or one where a workflow definition is registered. Anything else is most
    likely a typo that would leave the worker idle for ever: NOT_FOUND, and the SDK tries
    again later (a worker deployed before its workflows connects once one is registered)."""
    if namespace == DEFAULT or namespace in caller.roles:
        return
    found = connection.execute(
        select(definitions.c.id).where(definitions.c.namespace == namespace).limit(1)
    ).first()
    if found is None:
        raise errors.NotFound(
            f"namespace {namespace!r} is unknown: no workflow definition is registered in it "
            "and the worker's credential does not name it"
        )


def _check_allowed_step_types(caller: Caller, hello: wpb.Hello) -> None:
    """A credential limited to some step types may declare only those."""
    if caller.step_types is None:
        return
    for declared in hello.step_types:
        if declared.name not in caller.step_types:
            raise errors.PermissionDenied(
                f"{caller.principal} may not run step type {declared.name!r} "
                "(its credential is limited to other step types)"
            )


def _check_hello(hello: wpb.Hello) -> None:
    """Refuses a Hello whose declarations the engine could not rely on, naming the field."""
    if not hello.worker_id:
        raise errors.InvalidArgument.field("hello.worker_id", "is required")
    if not hello.step_types:
        raise errors.InvalidArgument.field(
            "hello.step_types", "declares no step type: a worker runs at least one"
        )
    for index, declared in enumerate(hello.step_types):
        where = f"hello.step_types[{index}]"
        if not NAME_PATTERN.fullmatch(declared.name):
            raise errors.InvalidArgument.field(f"{where}.name", "is not a valid step type name")
        if not VERSION_PATTERN.fullmatch(declared.version):
            raise errors.InvalidArgument.field(
                f"{where}.version", f"step type {declared.name!r} needs a version"
            )
        if declared.idempotency == common_pb2.IDEMPOTENCY_UNSPECIFIED or (
            declared.idempotency not in common_pb2.Idempotency.values()
        ):
            raise errors.InvalidArgument.field(
                f"{where}.idempotency",
                f"step type {declared.name!r} declares no idempotency (key, natural or "
                "none): the engine refuses to run a step that has not declared how it "
                "handles retry",
            )
        if declared.HasField("retry"):
            # Validated as a definition's retry policy is: a worker's declaration is one too.
            problems = checks.retry_policy_problems(f"{where}.retry", declared.retry)
            if problems:
                summary = "; ".join(f"{field}: {text}" for field, text in problems)
                raise errors.InvalidArgument(f"step type {declared.name!r}: {summary}", problems)


def _checked_credit(n: int) -> int:
    """A Credit's window; a negative or oversized one ends the stream INVALID_ARGUMENT."""
    if n < 0:
        raise errors.InvalidArgument.field(
            "credit.n", f"is {n}: a window is 0 or more (0 stops new tasks)"
        )
    if n > MAX_CREDIT:
        raise errors.InvalidArgument.field("credit.n", f"is {n}: at most {MAX_CREDIT}")
    return n


def _details(beat: wpb.Heartbeat) -> dict[str, ops.HeartbeatDetails]:
    """The progress details of a heartbeat, by task id (kept as sent): one payload per task.

    `details` is for a heartbeat naming one task; several tasks report theirs in `progress`.
    """
    kept: dict[str, ops.HeartbeatDetails] = {}
    if beat.HasField("details"):
        if len(beat.task_ids) != 1:
            raise errors.InvalidArgument.field(
                "heartbeat.details",
                f"belongs to one task, and the heartbeat names {len(beat.task_ids)}: "
                "send each task's details in heartbeat.progress",
            )
        kept[storable(beat.task_ids[0])] = ops.HeartbeatDetails(
            beat.details.encoding, beat.details.data
        )
    for index, progress in enumerate(beat.progress):
        if not progress.task_id:
            raise errors.InvalidArgument.field(
                f"heartbeat.progress[{index}].task_id", "is required"
            )
        kept[storable(progress.task_id)] = ops.HeartbeatDetails(
            progress.details.encoding, progress.details.data
        )
    return kept


def storable(text: str) -> str:
    """A worker's text as every store keeps it: PostgreSQL's text refuses NUL characters
    (a task id so changed names no task, and its result is ignored as unknown)."""
    return text.replace("\x00", "\ufffd")
