"""Task rows as the worker sees them (surefoot.v1.Task)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from surefoot.v1 import common_pb2
from surefoot.v1 import worker_service_pb2 as wpb

JSON = "json/plain"


def task_message(row: dict[str, Any]) -> wpb.Task:
    task = wpb.Task(
        task_id=row["id"],
        run_id=row["run_id"],
        node_id=row["node_id"],
        step_type=row["step_type"],
        step_version=row["step_version"],
        attempt=row["attempt"],
        idempotency_key=row["idempotency_key"],
        input=common_pb2.Payload(encoding=JSON, data=row["input"].encode()),
        traceparent=row["traceparent"],
        namespace=row["namespace"],
        workflow_name=row["workflow_name"],
    )
    if row.get("timeout_seconds") and row.get("leased_at") is not None:
        task.deadline.FromDatetime(row["leased_at"] + timedelta(seconds=row["timeout_seconds"]))
    return task
