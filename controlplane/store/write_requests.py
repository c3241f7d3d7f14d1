"""The `write_requests` table: what a write RPC answered, by the request id its caller gave.

A client whose call timed out cannot tell whether it went through; it repeats the call with
the same request id and must get the first call's answer, not a second action. A row is
written in the transaction that makes the write, so an answer is kept exactly when the write
committed. It holds the serialized response, and what identifies the request (the method
and a hash of the request without its id, with the caller's principal), so that a
different request under a used id is refused rather than answered with another's outcome.

Rows are kept for `KEEP` and then purged by the reaping transaction: a repeat is a client's
retry, which comes in seconds or minutes, not months.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.message import Message
from sqlalchemy import Connection, delete, select

from controlplane import errors
from controlplane.store.schema import write_requests

KEEP = timedelta(days=7)


@dataclass(frozen=True)
class RequestKey:
    """One write request as its id claims it."""

    namespace: str
    request_id: str
    method: str
    fingerprint: str
    principal: str

    @classmethod
    def of(cls, namespace: str, method: str, request: Message, principal: str) -> RequestKey:
        """The key of `request` (a message with a `request_id` field) sent by `principal`."""
        bare = type(request)()
        bare.CopyFrom(request)
        request_id: str = bare.request_id  # type: ignore[attr-defined]
        bare.ClearField("request_id")
        digest = hashlib.sha256(principal.encode())
        digest.update(b"\0" + bare.SerializeToString(deterministic=True))
        return cls(namespace, request_id, method, digest.hexdigest(), principal)


def find(connection: Connection, key: RequestKey) -> bytes | None:
    """The first answer to `key`'s request id (a serialized response), or None.

    Raises:
        errors.AlreadyExists: the id was used for a different request.
    """
    table = write_requests
    row = connection.execute(
        select(table.c.method, table.c.fingerprint, table.c.response).where(
            table.c.namespace == key.namespace, table.c.request_id == key.request_id
        )
    ).first()
    if row is None:
        return None
    if row.method != key.method or row.fingerprint != key.fingerprint:
        raise reused(key, row.method)
    return bytes(row.response)


def reused(key: RequestKey, method: str) -> errors.AlreadyExists:
    """The refusal of a request under an id another request (of `method`) used."""
    return errors.AlreadyExists(
        f"request id {key.request_id!r} was used for a different request ({method}): "
        "a new request needs a new id"
    )


def record(connection: Connection, key: RequestKey, response: bytes, now: datetime) -> None:
    """Keep `response` as the answer to `key` (in the transaction that made the write).

    A second control plane recording the same id at the same moment loses on the primary
    key; its transaction is retried and then finds this row.
    """
    connection.execute(
        write_requests.insert().values(
            namespace=key.namespace,
            request_id=key.request_id,
            method=key.method,
            fingerprint=key.fingerprint,
            principal=key.principal,
            response=response,
            created_at=now,
        )
    )


def purge(connection: Connection, now: datetime) -> None:
    """Forget answers older than `KEEP`."""
    table = write_requests
    connection.execute(delete(table).where(table.c.created_at < now - KEEP))
