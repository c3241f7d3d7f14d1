"""Why a request is refused, one class per gRPC status.

Raised anywhere below the API (dispatch, store, engine adapters) and turned into the
status in one place (`controlplane.api.failures`), so no servicer needs its own
try/except ladder and a new refusal cannot forget its status code.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc


class Refusal(Exception):
    """A request refused for a reason the caller can act on; nothing was written."""

    code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION


class InvalidArgument(Refusal):
    """The request itself is wrong: each violation names the offending field."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, violations: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        # (field path such as "input.amount", what is wrong there), every one of them.
        self.violations: list[tuple[str, str]] = list(violations)

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls(f"{field}: {description}", [(field, description)])


class NotFound(Refusal):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(Refusal):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(Refusal):
    """The request is valid but the state does not allow it."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(Refusal):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(Refusal):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(Refusal):
    """The caller went past a limit (the message names it); it may try again within it."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(Refusal):
    """The database (or another dependency) cannot be reached; the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE
