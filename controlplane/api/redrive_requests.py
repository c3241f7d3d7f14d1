"""StartRedrive's request checked, its selection and its plan: what a dry run answers.

Bad input is INVALID_ARGUMENT naming the field, before anything is read or written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import Connection
from surefoot.v1 import operation_service_pb2 as ops_pb
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane import errors
from controlplane.api.namespaces import checked_namespace
from controlplane.store import dead_letter_queries as dlq
from controlplane.store import operation_queries as oq

MAX_RATE = 10_000.0
# One retry every 1,000 s at the slowest: a slower rate is a mistake, not a plan, and its
# expected duration must still fit a protobuf Duration.
MIN_RATE = 0.001
# google.protobuf.Duration's largest value, in seconds (about 10,000 years).
MAX_DURATION_SECONDS = 315_576_000_000
MAX_RUN_IDS = 10_000
MAX_COMMENT = 2000
MAX_REQUEST_ID = 200


@dataclass(frozen=True)
class RedriveRequest:
    namespace: str
    where: dlq.DeadLetterFilter
    limit: int
    rate: float
    # The selection as given, kept with the operation (its JSON mapping).
    selection: str


def checked(request: ops_pb.StartRedriveRequest) -> RedriveRequest:
    namespace = checked_namespace(request.namespace)
    selection = request.selection
    if len(selection.run_ids) > MAX_RUN_IDS:
        raise errors.InvalidArgument.field(
            "selection.run_ids", f"names more than {MAX_RUN_IDS} runs; redrive by filter"
        )
    if any(not run_id or len(run_id) > 36 for run_id in selection.run_ids):
        raise errors.InvalidArgument.field("selection.run_ids", "holds an empty or overlong id")
    if selection.limit < 0:
        raise errors.InvalidArgument.field("selection.limit", "must be 0 (all) or more")
    where = dead_letter_filter(selection.filter, tuple(selection.run_ids))
    if where.empty:
        raise errors.InvalidArgument.field(
            "selection",
            "needs a filter field or run ids: redriving every dead letter is refused",
        )
    rate = request.rate_per_second
    if not math.isfinite(rate) or not MIN_RATE <= rate <= MAX_RATE:
        raise errors.InvalidArgument.field(
            "rate_per_second",
            f"must be between {MIN_RATE:g} and {MAX_RATE:.0f} retries a second",
        )
    if len(request.comment) > MAX_COMMENT:
        raise errors.InvalidArgument.field("comment", f"is longer than {MAX_COMMENT} characters")
    if len(request.request_id) > MAX_REQUEST_ID:
        raise errors.InvalidArgument.field(
            "request_id", f"is longer than {MAX_REQUEST_ID} characters"
        )
    return RedriveRequest(
        namespace,
        where,
        int(selection.limit),
        rate,
        json_format.MessageToJson(selection, indent=None, sort_keys=True),
    )


def dead_letter_filter(
    message: ws.DeadLetterFilter, run_ids: tuple[str, ...] = ()
) -> dlq.DeadLetterFilter:
    return dlq.DeadLetterFilter(
        workflow_name=message.workflow_name,
        step_type=message.step_type,
        error_type=message.error_type,
        workflow_version=message.workflow_version,
        step_version=message.step_version,
        error_signature=message.error_signature,
        run_ids=run_ids,
    )


def dry_run(
    connection: Connection, checked: RedriveRequest, include_unsafe: bool
) -> ops_pb.RedrivePlan:
    """What a redrive of the selection would do now: counts per step type, the unsafe ones."""
    found = dlq.planned(connection, checked.namespace, checked.where, checked.limit)
    return plan(
        [
            oq.PlannedItems(
                p.step_type,
                p.step_version,
                p.idempotency,
                p.count,
                excluded=p.idempotency == oq.UNSAFE and not include_unsafe,
            )
            for p in found
        ],
        checked.rate,
    )


def plan(items: list[oq.PlannedItems], rate: float) -> ops_pb.RedrivePlan:
    matched = sum(p.count for p in items)
    unsafe = sum(p.count for p in items if p.idempotency == oq.UNSAFE)
    to_redrive = sum(p.count for p in items if not p.excluded)
    duration = Duration()
    seconds = min(to_redrive / rate, MAX_DURATION_SECONDS) if rate > 0 else 0.0
    duration.FromNanoseconds(round(seconds * 1e9))
    return ops_pb.RedrivePlan(
        matched=matched,
        unsafe=unsafe,
        to_redrive=to_redrive,
        step_types=[
            ops_pb.PlannedStepType(
                step_type=p.step_type,
                step_version=p.step_version,
                idempotency=p.idempotency,
                count=p.count,
                excluded=p.excluded,
            )
            for p in items
        ],
        rate_per_second=rate,
        expected_duration=duration,
    )
