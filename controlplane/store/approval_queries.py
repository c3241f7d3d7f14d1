"""Reading approvals for the API: pending ones by namespace, workflow and approver."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Row, and_, or_, select

from controlplane.store.run_queries import decode_page_token, encode_page_token
from controlplane.store.schema import approvals


def get_approval(connection: Connection, namespace: str, approval_id: str) -> Row[Any] | None:
    return connection.execute(
        select(approvals).where(approvals.c.id == approval_id, approvals.c.namespace == namespace)
    ).first()


def list_approvals(
    connection: Connection,
    namespace: str,
    *,
    statuses: list[str],
    workflow_name: str = "",
    approvers: tuple[str, ...] = (),
    page_size: int = 100,
    page_token: str = "",
) -> tuple[list[Row[Any]], str]:
    """A page of approvals, oldest request first (the queue order an approver works in)."""
    query = select(approvals).where(
        approvals.c.namespace == namespace, approvals.c.status.in_(statuses)
    )
    if workflow_name:
        query = query.where(approvals.c.workflow_name == workflow_name)
    if approvers:
        # approvers is a JSON list; an empty list means anyone may decide.
        query = query.where(
            or_(
                approvals.c.approvers == "[]",
                *(approvals.c.approvers.contains(json.dumps(name)) for name in approvers),
            )
        )
    if page_token:
        requested_at, approval_id = decode_page_token(page_token)
        query = query.where(
            or_(
                approvals.c.requested_at > requested_at,
                and_(approvals.c.requested_at == requested_at, approvals.c.id > approval_id),
            )
        )
    query = query.order_by(approvals.c.requested_at, approvals.c.id).limit(page_size + 1)
    rows = list(connection.execute(query))
    if len(rows) <= page_size:
        return rows, ""
    last = rows[page_size - 1]
    return rows[:page_size], encode_page_token(last.requested_at, last.id)
