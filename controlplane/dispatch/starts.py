"""Starting runs inside a committer batch: the definition, the request id, the input schema.

A batch's starts are resolved together (one query for their definitions, one for their
request ids), not one per run: under load most of a batch is starts of the same few
workflows.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, not_, select

from controlplane import errors
from controlplane.engine import machine
from controlplane.engine.definition import CompiledDefinition
from controlplane.store import definitions as defs
from controlplane.store import run_queries
from controlplane.store.codec import load_json
from controlplane.store.definitions import DefinitionCache
from controlplane.store.run_batch import RunBatch
from controlplane.store.schema import definitions
from controlplane.store.step_types import BatchCatalog

if TYPE_CHECKING:
    from controlplane.dispatch.operations.start_run import StartRun

CHUNK = 500


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    created: bool
    workflow_version: str
    # The run's status and output once the start committed (a run may end in its start).
    status: str
    output: Any = None


class InvalidInput(errors.InvalidArgument):
    """The run input does not match the workflow's declared JSON Schema."""

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        # (JSON pointer into the input, what is wrong there), every one of them.
        self.problems = problems
        super().__init__(
            message,
            [
                ("input" + ("" if where == "/" else where.replace("/", ".")), text)
                for where, text in problems
            ],
        )

    @classmethod
    def check(cls, definition: CompiledDefinition, value: Any, name: str = "input") -> None:
        """Raise if `value` does not match `definition`'s input schema; `name` is the request
        field that carried it."""
        problems = definition.input_problems(value)
        if not problems:
            return
        where, first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise cls(
            f"{name} does not match the input schema of {definition.name}@{definition.version}: "
            f"{first}" + (f" (at {where})" if where != "/" else "") + more,
            problems,
        )


class BatchStarts:
    """The starts of one batch; made by `prepare`, used by `start` for each operation."""

    def __init__(
        self,
        batch: RunBatch,
        starts: list[StartRun],
        definitions: DefinitionCache,
        catalog: BatchCatalog,
        uniform: Callable[[], float],
    ) -> None:
        self._batch = batch
        self._uniform = uniform
        self._definitions = definitions
        self._catalog = catalog
        keys = {(op.namespace, op.workflow_name, op.workflow_version) for op in starts}
        self._rows = {key: defs.find(batch.connection, *key) for key in keys}
        self._known: dict[tuple[str, str], StartedRun] = {}
        by_namespace: dict[str, set[str]] = defaultdict(set)
        for op in starts:
            if op.request_id:
                by_namespace[op.namespace].add(op.request_id)
        for namespace, ids in sorted(by_namespace.items()):
            request_ids = sorted(ids)
            for first in range(0, len(request_ids), CHUNK):
                chunk = request_ids[first : first + CHUNK]
                for row in run_queries.by_request_id(batch.connection, namespace, chunk):
                    self._known[(namespace, row.request_id)] = StartedRun(
                        row.id, False, row.workflow_version, row.status, load_json(row.output)
                    )

    def start(self, op: StartRun) -> StartedRun:
        """The run `op` asks for: a new one, or the one its request id started before.

        Raises:
            errors.NotFound, errors.FailedPrecondition (deprecated), InvalidInput (schema).
        """
        batch = self._batch
        if op.request_id:
            known = self._known.get((op.namespace, op.request_id))
            if known is not None:
                return known
        row = self._definition_row(op)
        definition = self._definitions.get(row.id, batch.connection)
        InvalidInput.check(definition, op.input)
        state, transition = machine.start_run(
            run_id=str(uuid.uuid4()),
            namespace=op.namespace,
            definition=definition,
            input=op.input,
            time=batch.now,
            catalog=self._catalog.catalog_for(
                op.namespace, batch.connection, definition.step_types
            ),
            request_id=op.request_id,
            principal=op.principal,
            uniform=self._uniform,
        )
        trace_id = uuid.uuid4().hex
        batch.add_run(state, row.id, trace_id, op.request_id or None, transition)
        started = StartedRun(state.id, True, state.workflow_version, state.status, state.output)
        if op.request_id:
            self._known[(op.namespace, op.request_id)] = started
        return started

    def _definition_row(self, op: StartRun) -> defs.DefinitionRow:
        row = self._rows.get((op.namespace, op.workflow_name, op.workflow_version))
        if row is None:
            latest = op.workflow_version in ("", "latest")
            awaiting = latest and awaiting_evaluation(
                self._batch.connection, op.namespace, op.workflow_name
            )
            if awaiting:
                raise errors.FailedPrecondition(
                    no_latest_yet(op.workflow_name, awaiting, "or name a version to start runs")
                )
            if latest and defs.any_version(self._batch.connection, op.namespace, op.workflow_name):
                raise errors.FailedPrecondition(
                    f"every version of {op.workflow_name} is deprecated: register a new one "
                    "or reinstate one to start runs"
                )
            raise errors.NotFound(f"workflow {op.workflow_name} is not registered")
        if row.deprecated:
            why = row.deprecation_reason or "no reason given"
            raise errors.FailedPrecondition(
                f"{row.name}@{row.version} is deprecated by {row.deprecated_by or 'unknown'} "
                f"({why}): its runs in flight finish on it, new runs take another version"
            )
        return row


def awaiting_evaluation(connection: Connection, namespace: str, name: str) -> str:
    """The newest version of `name` kept from being latest only by its require_eval (not
    deprecated, no passed evaluation); "" when there is none. Asked once no version is
    eligible, to say what would make one so."""
    query = (
        select(definitions.c.version)
        .where(
            definitions.c.namespace == namespace,
            definitions.c.name == name,
            definitions.c.deprecated.is_(False),
            not_(defs.eligible()),
        )
        .order_by(definitions.c.sequence.desc())
        .limit(1)
    )
    return str(connection.execute(query).scalar() or "")


def no_latest_yet(name: str, version: str, otherwise: str) -> str:
    """Why `name` has no latest version while `version` awaits its evaluation."""
    return (
        f"{name}@{version} awaits a passing evaluation (run `surefoot eval {name}@{version}`) "
        f"and no other version of {name} is eligible: it becomes latest once one passes; "
        + otherwise
    )
