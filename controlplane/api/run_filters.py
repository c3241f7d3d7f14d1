"""Which runs a ListRuns or WatchRuns request means, checked: INVALID_ARGUMENT naming the
field at fault, before anything is read."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import run_pb2

from controlplane import errors
from controlplane.store.run_queries import RunSelection

# Lower-case hex and dashes, as run ids are written; four at least, so that a prefix is not
# a typo that lists everything, and the range it is read as stays narrow.
RUN_ID_PREFIX = re.compile(r"[0-9a-f-]{4,36}")
MAX_NAME = 200


def checked_selection(namespace: str, fields: Any, path: str = "") -> RunSelection:
    """The selection a ListRunsRequest or a RunFilter (`fields`) describes.

    Args:
        namespace: The request's namespace, already checked.
        fields: Has workflow_name, workflow_version, statuses, created_after, created_before
            and run_id_prefix.
        path: How violations name the fields' parent ("filter." for a WatchRunsRequest).

    Raises:
        errors.InvalidArgument: naming the first field at fault.
    """
    for name in ("workflow_name", "workflow_version"):
        if len(getattr(fields, name)) > MAX_NAME:
            raise errors.InvalidArgument.field(
                f"{path}{name}", f"is longer than {MAX_NAME} characters"
            )
    statuses = checked_statuses(fields.statuses, f"{path}statuses")
    after = _time(fields, "created_after", path)
    before = _time(fields, "created_before", path)
    if after is not None and before is not None and after >= before:
        raise errors.InvalidArgument.field(
            f"{path}created_before", "must be later than created_after"
        )
    prefix = fields.run_id_prefix
    if prefix and not RUN_ID_PREFIX.fullmatch(prefix):
        raise errors.InvalidArgument.field(
            f"{path}run_id_prefix", "must be 4 to 36 characters of lower-case hex and dashes"
        )
    return RunSelection(
        namespace,
        workflow_name=fields.workflow_name,
        workflow_version=fields.workflow_version,
        statuses=statuses,
        created_after=after,
        created_before=before,
        id_prefix=prefix,
    )


def checked_statuses(values: Iterable[run_pb2.RunStatus.ValueType], field: str) -> tuple[str, ...]:
    """Run statuses as the runs table writes them (`WAITING`), in the order given."""
    found = []
    for index, status in enumerate(values):
        if status == run_pb2.RUN_STATUS_UNSPECIFIED or status not in run_pb2.RunStatus.values():
            raise errors.InvalidArgument.field(f"{field}[{index}]", "is not a run status")
        found.append(run_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_"))
    return tuple(found)


def _time(fields: Any, name: str, path: str) -> datetime | None:
    if not fields.HasField(name):
        return None
    value: Timestamp = getattr(fields, name)
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise errors.InvalidArgument.field(f"{path}{name}", "is not a valid time") from None
