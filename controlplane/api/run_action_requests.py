"""StartRunAction's request checked, the runs it selects and its plan: what a dry run answers.

Bad input is INVALID_ARGUMENT naming the field, before anything is read or written. Which
runs an action applies to is decided here from each run's row when selected (a pause skips
runs ended or paused already); when a run's turn comes the committer decides again
(dispatch/operations/run_action_item.py), since the run may have changed meanwhile.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Connection
from surefoot.v1 import operation_service_pb2 as ops_pb
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane import errors
from controlplane.api.namespaces import checked_namespace
from controlplane.api.payloads import parse_json
from controlplane.api.redrive_requests import MAX_DURATION_SECONDS, MAX_RATE, MIN_RATE
from controlplane.dispatch.operations import run_action_item as actions
from controlplane.dispatch.operations.run_action_item import RunActionSpec
from controlplane.dispatch.starts import InvalidInput
from controlplane.engine import state as s
from controlplane.engine.definition import CompiledDefinition
from controlplane.store.codec import load_json
from controlplane.store.definitions import DefinitionCache
from controlplane.store.run_action_queries import RunWhere, SelectedRun, stream_selected

MAX_RUN_IDS = 10_000
MAX_COMMENT = 2000
MAX_REQUEST_ID = 200
MAX_RUN_ID = 36
# As ListRuns takes it: lower-case hex and dashes, long enough not to be a typo for "all".
_RUN_ID_PREFIX = re.compile(r"[0-9a-f-]{4,36}")

ACTIONS = {
    ops_pb.RUN_ACTION_TYPE_CANCEL: actions.CANCEL,
    ops_pb.RUN_ACTION_TYPE_ABANDON: actions.ABANDON,
    ops_pb.RUN_ACTION_TYPE_PAUSE: actions.PAUSE,
    ops_pb.RUN_ACTION_TYPE_RESUME: actions.RESUME,
    ops_pb.RUN_ACTION_TYPE_FORK: actions.FORK,
}
TYPES = {action: number for number, action in ACTIONS.items()}
# What each does, in a sentence: "none of the 12 runs selected can be paused".
DONE = {
    actions.CANCEL: "cancelled",
    actions.ABANDON: "abandoned",
    actions.PAUSE: "paused",
    actions.RESUME: "resumed",
    actions.FORK: "forked",
}


@dataclass(frozen=True)
class RunActionRequest:
    namespace: str
    where: RunWhere
    limit: int
    rate: float
    spec: RunActionSpec
    # The selection as given, kept with the operation (its JSON mapping).
    selection: str


def checked(request: ops_pb.StartRunActionRequest) -> RunActionRequest:
    """The request's parts, checked.

    Raises:
        errors.InvalidArgument: naming the first field at fault.
    """
    namespace = checked_namespace(request.namespace)
    spec = _action(request.action)
    where = _where(request.selection)
    if spec.action == actions.FORK and not where.workflow_name:
        raise errors.InvalidArgument.field(
            "selection.filter.workflow_name",
            "is required to fork: from_node names a node of one workflow",
        )
    rate = request.rate_per_second
    if not math.isfinite(rate) or not MIN_RATE <= rate <= MAX_RATE:
        raise errors.InvalidArgument.field(
            "rate_per_second", f"must be between {MIN_RATE:g} and {MAX_RATE:.0f} runs a second"
        )
    if len(request.comment) > MAX_COMMENT:
        raise errors.InvalidArgument.field("comment", f"is longer than {MAX_COMMENT} characters")
    if len(request.request_id) > MAX_REQUEST_ID:
        raise errors.InvalidArgument.field(
            "request_id", f"is longer than {MAX_REQUEST_ID} characters"
        )
    return RunActionRequest(
        namespace,
        where,
        int(request.selection.limit),
        rate,
        spec,
        json_format.MessageToJson(request.selection, indent=None, sort_keys=True),
    )


def _action(message: ops_pb.RunAction) -> RunActionSpec:
    action = ACTIONS.get(message.type)
    if action is None:
        known = ", ".join(ops_pb.RunActionType.Name(n) for n in ACTIONS)
        raise errors.InvalidArgument.field("action.type", f"must be one of {known}")
    override = message.HasField("input_override")
    if action != actions.FORK:
        if message.from_node:
            raise errors.InvalidArgument.field("action.from_node", "is for FORK only")
        if override:
            raise errors.InvalidArgument.field("action.input_override", "is for FORK only")
        return RunActionSpec(action)
    if not message.from_node:
        raise errors.InvalidArgument.field("action.from_node", "is required to fork")
    if len(message.from_node) > 200:
        raise errors.InvalidArgument.field("action.from_node", "is longer than 200 characters")
    value = parse_json("action.input_override", message.input_override, empty={})
    return RunActionSpec(
        action, from_node=message.from_node, override=override, input=value if override else None
    )


def _where(selection: ops_pb.RunSelection) -> RunWhere:
    run_ids = tuple(selection.run_ids)
    if len(run_ids) > MAX_RUN_IDS:
        raise errors.InvalidArgument.field(
            "selection.run_ids", f"names more than {MAX_RUN_IDS} runs; select them by filter"
        )
    if any(not run_id or len(run_id) > MAX_RUN_ID for run_id in run_ids):
        raise errors.InvalidArgument.field("selection.run_ids", "holds an empty or overlong id")
    if selection.limit < 0:
        raise errors.InvalidArgument.field("selection.limit", "must be 0 (all) or more")
    f = selection.filter
    statuses = []
    for index, status in enumerate(f.statuses):
        if status == run_pb2.RUN_STATUS_UNSPECIFIED or status not in run_pb2.RunStatus.values():
            raise errors.InvalidArgument.field(
                f"selection.filter.statuses[{index}]", "is not a run status"
            )
        statuses.append(run_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_"))
    after = _time(f, "created_after")
    before = _time(f, "created_before")
    if after is not None and before is not None and after >= before:
        raise errors.InvalidArgument.field(
            "selection.filter.created_before", "must be later than created_after"
        )
    if f.run_id_prefix and not _RUN_ID_PREFIX.fullmatch(f.run_id_prefix):
        raise errors.InvalidArgument.field(
            "selection.filter.run_id_prefix",
            "must be 4 to 36 characters of lower-case hex and dashes",
        )
    where = RunWhere(
        workflow_name=f.workflow_name,
        workflow_version=f.workflow_version,
        statuses=tuple(statuses),
        created_after=after,
        created_before=before,
        run_id_prefix=f.run_id_prefix,
        run_ids=run_ids,
    )
    if where.empty and not selection.all_runs:
        raise errors.InvalidArgument.field(
            "selection",
            "needs a filter field or run ids; acting on every run of the namespace must be "
            "asked for with all_runs",
        )
    if selection.all_runs and not where.empty:
        raise errors.InvalidArgument.field(
            "selection.all_runs", "selects every run: it cannot go with a filter or run ids"
        )
    return where


def _time(message: ws.RunFilter, name: str) -> datetime | None:
    if not message.HasField(name):  # type: ignore[arg-type]
        return None
    value: Timestamp = getattr(message, name)
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise errors.InvalidArgument.field(
            f"selection.filter.{name}", "is not a valid time"
        ) from None


def selected_runs(
    connection: Connection, checked: RunActionRequest, definitions: DefinitionCache
) -> Iterator[SelectedRun]:
    """The runs the request selects, in order, each with why the action does not apply to
    it (None: it does)."""
    spec = checked.spec
    with_state = spec.action in (actions.PAUSE, actions.RESUME, actions.FORK)
    rows = stream_selected(
        connection, checked.namespace, checked.where, checked.limit, with_state=with_state
    )
    # Per workflow version: whether a fork from the node, with the input, is possible at all.
    by_version: dict[int, str | None] = {}
    for row in rows:
        why = None
        if spec.action == actions.FORK:
            # The version first: a node it does not have was never entered either.
            if row.definition_id not in by_version:
                definition = definitions.get(row.definition_id, connection)
                by_version[row.definition_id] = fork_refused(definition, spec)
            why = by_version[row.definition_id]
        if why is None:
            saved = load_json(row.state) if with_state else None
            why = not_applicable(spec, row.status, saved)
        yield SelectedRun(row.id, row.workflow_name, row.workflow_version, why)


def not_applicable(spec: RunActionSpec, status: str, saved: dict[str, Any] | None) -> str | None:
    """Why `spec` does not apply to a run in `status` with state `saved` (its JSON; needed
    for pause, resume and fork); None if it does. Short, without the run's id: the plan
    counts runs by it."""
    action = spec.action
    if action == actions.FORK:
        # Any run may be forked, ended ones first of all, once it entered the node.
        steps = (saved or {}).get("steps", {})
        return None if spec.from_node in steps else f"never entered node {spec.from_node!r}"
    if status in s.TERMINAL:
        return f"the run has ended ({status})"
    if action == actions.ABANDON and status == s.COMPENSATING:
        return "already compensating"
    paused = (saved or {}).get("paused") is not None
    if action == actions.PAUSE and paused:
        return "already paused"
    if action == actions.RESUME and not paused:
        return "not paused"
    return None


def fork_refused(definition: CompiledDefinition, spec: RunActionSpec) -> str | None:
    """Why no run of `definition`'s version can be forked as `spec` says; None if some can."""
    node = spec.from_node
    version = f"{definition.name}@{definition.version}"
    if node not in definition.nodes:
        return f"{version} has no node {node!r}"
    if node in definition.branch_of:
        return f"node {node!r} is inside a parallel branch"
    if spec.override:
        try:
            InvalidInput.check(definition, spec.input, "input_override")
        except InvalidInput as exc:
            return str(exc)
    return None


def plan(runs: list[SelectedRun], rate: float) -> ops_pb.RunActionPlan:
    """Counts of a selection: matched, applicable, per workflow version, by reason."""
    matched: Counter[tuple[str, str]] = Counter()
    applicable: Counter[tuple[str, str]] = Counter()
    reasons: Counter[str] = Counter()
    for run in runs:
        key = (run.workflow_name, run.workflow_version)
        matched[key] += 1
        if run.not_applicable is None:
            applicable[key] += 1
        else:
            reasons[run.not_applicable] += 1
    to_act = sum(applicable.values())
    duration = Duration()
    seconds = min(to_act / rate, MAX_DURATION_SECONDS) if rate > 0 else 0.0
    duration.FromNanoseconds(round(seconds * 1e9))
    return ops_pb.RunActionPlan(
        matched=len(runs),
        applicable=to_act,
        not_applicable=len(runs) - to_act,
        workflows=[
            ops_pb.PlannedWorkflow(
                workflow_name=name,
                workflow_version=version,
                matched=count,
                applicable=applicable[(name, version)],
            )
            for (name, version), count in sorted(matched.items())
        ],
        reasons=[
            ops_pb.NotApplicableRuns(reason=reason, count=count)
            for reason, count in sorted(reasons.items(), key=lambda r: (-r[1], r[0]))
        ],
        rate_per_second=rate,
        expected_duration=duration,
    )


def nothing_to_do(planned: ops_pb.RunActionPlan, spec: RunActionSpec) -> errors.Refusal:
    """The refusal of an operation that would act on no run."""
    if planned.matched == 0:
        return errors.FailedPrecondition(f"the selection matches no run: nothing to {spec.action}")
    why = "; ".join(f"{r.reason}: {r.count}" for r in planned.reasons[:5])
    return errors.FailedPrecondition(
        f"none of the {planned.matched} runs selected can be {DONE[spec.action]} ({why})"
    )
