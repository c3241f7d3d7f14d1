"""One committer batch's transaction: what its operations read, change and answer together.

A `Transaction` lives for one attempt at committing one batch (a retried batch gets a new
one). It locks every run the batch's operations name, applies them in order, fires the
timers and kept events they unblock, takes back lost leases, and writes it all with one
`RunBatch` flush; what to tell whom afterwards is gathered in `out`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from controlplane import errors, telemetry
from controlplane.dispatch import claims, reaping, waiting
from controlplane.dispatch.attempt_spans import attempt_span
from controlplane.dispatch.delivery import Deliveries
from controlplane.dispatch.operations.once import Repeated
from controlplane.dispatch.operations.run_changes import CommittedRun, ReadBack
from controlplane.dispatch.sessions import SessionRegistry
from controlplane.dispatch.starts import BatchStarts
from controlplane.engine import machine
from controlplane.engine.definition import CompiledDefinition
from controlplane.engine.events import AttemptCompleted, AttemptFailed, AttemptLost, RunEvent
from controlplane.store import heartbeats, run_queries, write_requests
from controlplane.store.codec import to_datetime
from controlplane.store.definitions import DefinitionCache
from controlplane.store.heartbeats import HeartbeatDetails
from controlplane.store.run_batch import LoadedRun, RunBatch, RunCache
from controlplane.store.step_types import BatchCatalog, StepCatalogCache
from controlplane.store.write_requests import RequestKey

if TYPE_CHECKING:
    from controlplane.dispatch.operations.base import Operation
    from controlplane.dispatch.operations.start_run import StartRun


@dataclass(frozen=True)
class Resources:
    """What every transaction of a committer shares (long-lived, committer thread only)."""

    definitions: DefinitionCache
    catalog: StepCatalogCache
    sessions: SessionRegistry
    # The committer's random source: the engine's only randomness (retry jitter), law 4.
    uniform: Callable[[], float]
    lease_seconds: float
    lock_rows: bool
    runs: RunCache


class Transaction:
    def __init__(self, connection: Connection, now: float, resources: Resources) -> None:
        self.connection = connection
        self.now = now
        self._resources = resources
        self.sessions = resources.sessions
        self.batch = RunBatch(connection, now, lock_rows=resources.lock_rows, cache=resources.runs)
        self.out = Deliveries()
        # Spans of attempts this transaction records: emitted only once it has committed.
        self._spans = self.out.spans if telemetry.enabled() else None
        self._starting: list[StartRun] = []
        self._starts: BatchStarts | None = None
        self._lost: list[str] = []
        self._closing: list[str] = []
        # Leases to extend, by the session that holds them (the update checks it too).
        self._heartbeats: dict[str, list[str]] = defaultdict(list)
        self._details: dict[str, HeartbeatDetails] = {}
        self._read_backs: list[int] = []
        # Request ids answered by this transaction: (namespace, id) -> (key, result index,
        # render); and results that repeat one of them in the same batch.
        self._requests: dict[tuple[str, str], tuple[RequestKey, int, Callable[[Any], bytes]]] = {}
        self._repeats: list[tuple[int, int]] = []
        self.catalog = BatchCatalog(resources.catalog)

    # -- what operations declare before the runs are locked ------------------------------

    def will_start(self, op: StartRun) -> None:
        self._starting.append(op)

    def lose_session_leases(self, session_id: str, task_ids: list[str]) -> None:
        """The leases of a closed session, taken back after the batch's operations."""
        self._closing.append(session_id)
        self._lost.extend(task_ids)

    # -- what operations use while applied -----------------------------------------------

    @property
    def starts(self) -> BatchStarts:
        assert self._starts is not None, "StartRun.run_ids declares its start"
        return self._starts

    @property
    def uniform(self) -> Callable[[], float]:
        """The committer's random source: the engine's only randomness (law 4)."""
        return self._resources.uniform

    def definition_of(self, loaded: LoadedRun) -> CompiledDefinition:
        """The version `loaded` runs on, from the committer's cache."""
        return self._resources.definitions.get(loaded.definition_id, self.connection)

    def transition(self, run_id: str, event: RunEvent) -> None:
        """Apply an engine event to a locked run and queue its writes."""
        loaded = self.batch.runs[run_id]
        resources = self._resources
        definition = self.definition_of(loaded)
        catalog = self.catalog.catalog_for(
            loaded.state.namespace, self.connection, definition.step_types
        )
        state, transition = machine.apply(
            loaded.state, event, definition, catalog, resources.uniform
        )
        self.batch.record(state, transition)

    def attempt_ended(
        self,
        loaded: LoadedRun,
        event: AttemptCompleted | AttemptFailed | AttemptLost,
        started: float | None,
    ) -> None:
        """Call before the transition that records the outcome: keeps the attempt's span."""
        if self._spans is not None and (span := attempt_span(loaded, event, started)):
            self._spans.append(span)

    def acknowledge(self, session_id: str, task_id: str) -> None:
        self.out.acks[session_id].append(task_id)

    def extend_leases(
        self, session_id: str, task_ids: list[str], details: dict[str, HeartbeatDetails]
    ) -> None:
        self._heartbeats[session_id].extend(task_ids)
        self._details.update(details)

    def once(
        self, key: RequestKey, apply: Callable[[], Any], render: Callable[[Any], bytes]
    ) -> Any:
        """`apply()` unless `key`'s request id was answered: then `Repeated`, its answer.

        Called from an operation's `apply`, whose result is the next one appended.

        Raises:
            errors.AlreadyExists: the id was used for a different request.
        """
        index = len(self.out.results)
        earlier = self._requests.get((key.namespace, key.request_id))
        if earlier is not None:
            if earlier[0] != key:
                raise write_requests.reused(key, earlier[0].method)
            self._repeats.append((index, earlier[1]))
            return _PENDING_REPEAT
        found = write_requests.find(self.connection, key)
        if found is not None:
            return Repeated(found)
        result = apply()
        self._requests[(key.namespace, key.request_id)] = (key, index, render)
        return result

    # -- the batch -----------------------------------------------------------------------

    def apply(
        self,
        operations: Sequence[Operation],
        expired: list[tuple[str, str]],
        due: list[tuple[str, str, str]],
    ) -> None:
        """Apply `operations` in order, then what they and the clock unblock.

        `expired`: (task id, run id) of leases found run out; `due`: timers come due.
        """
        run_ids = {run_id for _, run_id in expired}
        for operation in operations:
            run_ids.update(operation.run_ids(self))
        run_ids.update(run_id for run_id, _, _ in due)
        self.batch.lock_runs(run_ids)
        if self._starting:
            r = self._resources
            self._starts = BatchStarts(
                self.batch, self._starting, r.definitions, self.catalog, r.uniform
            )
        results = self.out.results
        for operation in operations:
            try:
                result = operation.apply(self)
            except errors.Refusal as exc:
                result = exc
            if isinstance(result, ReadBack):
                self._read_backs.append(len(results))
            results.append((operation, result))
        waiting.fire_timers(self.batch, due, self.transition)
        waiting.match_kept_events(self.batch, self.transition)
        if self._lost:
            reaping.release(self, self._lost, "the worker's stream closed", self._closing)
        if expired:
            reaping.release(self, sorted({t for t, _ in expired}), "the lease expired")
        if self._heartbeats:
            until = to_datetime(self.now + self._resources.lease_seconds)
            for session_id, task_ids in self._heartbeats.items():
                claims.extend_leases(self.connection, session_id, task_ids, until)
        if self._details:
            heartbeats.record_details(self.connection, self._details)

    @property
    def reads_back(self) -> bool:
        """Whether `flush` reads as well as writes."""
        return bool(self._read_backs)

    def flush(self) -> None:
        """Write the batch; then read back the runs operations answer as committed."""
        self.batch.flush()
        results = self.out.results
        for index in self._read_backs:
            operation, back = results[index]
            view = run_queries.get_run(self.connection, back.namespace, back.run_id)
            assert view is not None, "a run changed in this transaction exists"
            state = self.batch.runs[back.run_id].state
            results[index] = (operation, CommittedRun(state, view))
        self._keep_answers()

    def _keep_answers(self) -> None:
        """Write the answers of the request ids applied, for the calls that repeat them."""
        results = self.out.results
        answers: dict[int, bytes] = {}
        now = to_datetime(self.now)
        for key, index, render in self._requests.values():
            answers[index] = render(results[index][1])
            write_requests.record(self.connection, key, answers[index], now)
        for index, first in self._repeats:
            results[index] = (results[index][0], Repeated(answers[first]))


# Stands for the answer to a request id given twice in one batch until the first is written.
_PENDING_REPEAT = object()
