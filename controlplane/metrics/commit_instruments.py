"""Histograms and counters fed by the committer thread, from what each transaction did.

The committer calls `batch_done` after each batch and `committed` after each transaction
that committed; both only read what the transaction already holds in memory (its leased
task rows, the history rows it wrote, its runs' states), so a batch costs no query more.

The committer only writes the figures down (a few tuples a step); a thread of their own hands
them to the SDK. A histogram's record costs some 13 µs a value with two readers (attributes
hashed and a lock taken per reader), and the committer is the one thread every step waits on:
recorded there, they cut `surefoot bench`'s steps/s by several percent; recorded beside it,
they use the time the process leaves the GIL free.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import Counter, Meter

from controlplane.engine.state import TERMINAL

if TYPE_CHECKING:
    from controlplane.dispatch.delivery import Deliveries
    from controlplane.engine.state import RunState
    from controlplane.store.run_batch import RunBatch

log = logging.getLogger("surefoot.metrics")

# Seconds: from a millisecond (a task handed out in its scheduling transaction) to ten
# minutes (a long step); OpenTelemetry's default buckets are milliseconds-sized.
SECONDS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip
# Operations per batch: the committer takes at most 512 (committer.MAX_BATCH).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# A transaction's counts: (counter, its labels as pairs) -> how many.
Counts = defaultdict[tuple[Counter, tuple[tuple[str, str], ...]], int]
# One figure for the SDK: an instrument's record or add, the value, its attributes.
Figure = tuple[Callable[..., None], float, dict[str, str] | None]
# Transactions whose figures may wait for the recorder (a minute of the busiest committer);
# past it a transaction's figures are dropped and said so, rather than growing without bound.
MAX_PENDING = 100_000
ATTEMPT_ENDS = {
    "ATTEMPT_COMPLETED": "completed",
    "ATTEMPT_FAILED": "failed",
    "ATTEMPT_LOST": "lost",
}


class CommitInstruments:
    """The committer's instruments (committer thread only)."""

    def __init__(self, meter: Meter) -> None:
        self.schedule_to_start = meter.create_histogram(
            "surefoot.step.schedule_to_start.duration",
            unit="s",
            description="From a task being due to a worker leasing it",
            explicit_bucket_boundaries_advisory=list(SECONDS_BUCKETS),
        )
        self.run_time = meter.create_histogram(
            "surefoot.step.duration",
            unit="s",
            description="An attempt's time, from its lease to its recorded outcome",
            explicit_bucket_boundaries_advisory=list(SECONDS_BUCKETS),
        )
        self.attempts = meter.create_counter(
            "surefoot.step.attempts",
            unit="{attempt}",
            description="Attempts ended, by outcome and whether it was the step's first "
            "(first-attempt success rate: completed first attempts over first attempts)",
        )
        self.retries = meter.create_counter(
            "surefoot.step.retries",
            unit="{attempt}",
            description="Attempts after the first handed to a worker",
        )
        self.dead_lettered = meter.create_counter(
            "surefoot.step.dead_lettered",
            unit="{step}",
            description="Steps dead-lettered (retries exhausted or a non-retryable error)",
        )
        self.runs_ended = meter.create_counter(
            "surefoot.runs.ended", unit="{run}", description="Runs that ended, by status"
        )
        self.batch_size = meter.create_histogram(
            "surefoot.commit.batch.size",
            unit="{operation}",
            description="Operations one committer transaction took",
            explicit_bucket_boundaries_advisory=list(BATCH_BUCKETS),
        )
        self.commit_time = meter.create_histogram(
            "surefoot.commit.duration",
            unit="s",
            description="One committer batch: its transaction and the deliveries after it",
            explicit_bucket_boundaries_advisory=list(SECONDS_BUCKETS),
        )

        self._recorder = Recorder()

    def start(self) -> None:
        self._recorder.start()

    def stop(self) -> None:
        """Record what is still pending, then stop the recorder."""
        self._recorder.stop()

    def batch_done(self, operations: int, seconds: float) -> None:
        """One batch went through the committer (never raises: it runs on its thread)."""
        self._recorder.put(
            [(self.batch_size.record, operations, None), (self.commit_time.record, seconds, None)]
        )

    def committed(self, batch: RunBatch, out: Deliveries) -> None:
        """What one committed transaction did: tasks leased, attempts ended, runs ended.
        Never raises: the transaction has committed, and a metric must not make the
        committer believe it failed (it would apply the batch again)."""
        try:
            figures: list[Figure] = []
            self._committed(batch, out, figures)
        except Exception:
            log.warning("metrics: a transaction's figures not recorded", exc_info=True)
            return
        self._recorder.put(figures)

    def _committed(self, batch: RunBatch, out: Deliveries, figures: list[Figure]) -> None:
        # Counters are summed over the transaction and added once per series: the SDK's
        # add costs as much as a histogram's record (its attributes hashed per reader),
        # and a batch's steps mostly share their series.
        counts: Counts = defaultdict(int)
        for rows in out.tasks.values():
            for row in rows:
                self._leased(row, counts, figures)
        for run_id, rows in batch.history_rows(set(batch.runs)).items():
            state = batch.runs[run_id].state
            for row in rows:
                if row["type"] in ATTEMPT_ENDS or row["type"] == "STEP_DEAD_LETTERED":
                    self._step_event(state, row, counts, figures)
        for run_id, before in batch.status_before.items():
            state = batch.runs[run_id].state
            if state.status in TERMINAL and state.status != before:
                ended = (
                    ("surefoot.namespace", state.namespace),
                    ("surefoot.workflow", state.workflow_name),
                    ("surefoot.status", str(state.status)),
                )
                counts[self.runs_ended, ended] += 1
        for (counter, labels), count in counts.items():
            figures.append((counter.add, count, dict(labels)))

    def _leased(self, task: dict[str, Any], counts: Counts, figures: list[Figure]) -> None:
        """A task handed to a worker: how long it waited once due, and whether a retry."""
        queue = {"surefoot.namespace": task["namespace"], "surefoot.step_type": task["step_type"]}
        waited = (task["leased_at"] - task["available_at"]).total_seconds()
        figures.append((self.schedule_to_start.record, max(0.0, waited), queue))
        if task["attempt"] > 1:
            labels = (*queue.items(), ("surefoot.workflow", task["workflow_name"]))
            counts[self.retries, labels] += 1

    def _step_event(
        self, state: RunState, event: dict[str, Any], counts: Counts, figures: list[Figure]
    ) -> None:
        """An attempt's outcome or a dead letter, from the history row the batch wrote."""
        step = state.steps.get(event["node_id"])
        step_type = step.step_type if step is not None else ""
        labels = (
            ("surefoot.namespace", state.namespace),
            ("surefoot.workflow", state.workflow_name),
            ("surefoot.step_type", step_type),
        )
        if event["type"] == "STEP_DEAD_LETTERED":
            counts[self.dead_lettered, labels] += 1
            return
        outcome = ATTEMPT_ENDS[event["type"]]
        first = "true" if event["attempt"] == 1 else "false"
        attempt = (*labels, ("surefoot.outcome", outcome), ("surefoot.first_attempt", first))
        counts[self.attempts, attempt] += 1
        # The state after the batch keeps every finished attempt, with when it was leased.
        ended = next(
            (
                a
                for a in (step.finished_attempts if step is not None else ())
                if a["number"] == event["attempt"]
            ),
            None,
        )
        if ended is not None and ended["started_at"] is not None:
            seconds = max(0.0, ended["ended_at"] - ended["started_at"])
            timed = {
                "surefoot.namespace": state.namespace,
                "surefoot.step_type": step_type,
                "surefoot.outcome": outcome,
            }
            figures.append((self.run_time.record, seconds, timed))


class Recorder:
    """Hands the committer's figures to the SDK on a thread of its own.

    A C queue between them: putting costs the committer a fraction of a microsecond, where
    a Condition's notify cost it several."""

    def __init__(self) -> None:
        self._pending: queue.SimpleQueue[list[Figure] | None] = queue.SimpleQueue()
        self._dropped = 0
        self._thread = threading.Thread(
            target=self._run, name="surefoot-metrics-record", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def put(self, figures: list[Figure]) -> None:
        """Queue one transaction's figures (the committer's thread: no SDK call here)."""
        if not self._thread.is_alive():
            self._record(figures)  # not started, or stopped: record in the caller's thread
        elif self._pending.qsize() >= MAX_PENDING:
            self._dropped += 1
        else:
            self._pending.put(figures)

    def stop(self) -> None:
        """Record what was queued, then end the thread."""
        if self._thread.is_alive():
            self._pending.put(None)
            self._thread.join(5.0)

    def _run(self) -> None:
        while (figures := self._pending.get()) is not None:
            self._record(figures)
            if self._dropped:
                log.warning(
                    "metrics: the figures of %d transaction(s) dropped: recording fell behind",
                    self._dropped,
                )
                self._dropped = 0

    @staticmethod
    def _record(figures: list[Figure]) -> None:
        try:
            for record, value, attributes in figures:
                record(value, attributes)
        except Exception:
            log.warning("metrics: a transaction's figures not recorded", exc_info=True)
