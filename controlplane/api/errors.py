"""Refusing a request: a precise gRPC status, with field violations for bad arguments.

Servicers raise `controlplane.errors.*` and `controlplane.api.failures` turns them into a
status; `invalid_argument` builds the one with field violations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status


async def invalid_argument(
    context: grpc.aio.ServicerContext,
    message: str,
    violations: Iterable[tuple[str, str]],
) -> NoReturn:
    """INVALID_ARGUMENT with a google.rpc.BadRequest naming every offending field."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in violations
        ]
    )
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message)
    status.details.add().Pack(bad_request)
    # grpc.aio has no abort_with_status: the details travel in the trailing metadata.
    converted = rpc_status.to_status(status)
    await context.abort(converted.code, converted.details, converted.trailing_metadata)
    raise AssertionError("unreachable")
