"""Request ids of the console's writes: a change retried after an unknown outcome acts once.

An operator who pressed `r` and saw "no answer within 5 s" presses `r` again. If the first
call did reach the server, a fresh request id would retry the step a second time; the same id
makes the server answer with the first call's outcome instead. So the id of a change is kept
while its outcome is unknown and forgotten once an answer (success or refusal) arrives: the
same change asked later, deliberately, is a new request.

There is one ledger per console, its ControlPlane's, and every write of the console goes
through it (`ControlPlane.write`, which the Run, Replay and Runs screens' RunClient calls
too): the same change asked from the dead-letter screen and then from the run's screen is
one request.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

# The codes after which a write may or may not have been made: no answer came.
UNKNOWN_OUTCOME = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)

Response = TypeVar("Response")


def outcome_unknown(exc: BaseException) -> bool:
    """Whether a failed call may have been applied: the gRPC error it was raised from
    (console errors are raised `from` it) says that no answer came."""
    cause = exc.__cause__
    return isinstance(cause, grpc.RpcError) and cause.code() in UNKNOWN_OUTCOME  # type: ignore[attr-defined]


class RequestIds:
    """Intent (`retry r1:b`: the change and what it is aimed at) -> the request and the id
    of its call whose outcome is still unknown."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[bytes, str]] = {}

    async def send(
        self, intent: str, request: Any, call: Callable[[Any], Awaitable[Response]]
    ) -> Response:
        """`call(request)` with `request.request_id` set for `intent`: the id is kept when
        the call got no answer, and settled when it got one (done or refused).

        Raises:
            Whatever `call` raises.
        """
        request.request_id = self.id_for(intent, request)
        try:
            response = await call(request)
        except Exception as exc:
            if not outcome_unknown(exc):
                self.settled(intent)
            raise
        self.settled(intent)
        return response

    def id_for(self, intent: str, request: Any) -> str:
        """The id to send: the pending one when this exact request (field for field, its
        request id aside) was sent for `intent` before; otherwise a new one, which replaces
        whatever was pending for `intent` (an edited comment is another request)."""
        fingerprint = _without_request_id(request)
        pending = self._pending.get(intent)
        if pending is not None and pending[0] == fingerprint:
            return pending[1]
        request_id = f"console-{uuid.uuid4()}"
        self._pending[intent] = (fingerprint, request_id)
        return request_id

    def settled(self, intent: str) -> None:
        """The server answered: the next request for `intent` is a new one."""
        self._pending.pop(intent, None)

    def pending(self, intent: str) -> str | None:
        found = self._pending.get(intent)
        return found[1] if found else None


def _without_request_id(request: Any) -> bytes:
    copy = type(request)()
    copy.CopyFrom(request)
    copy.request_id = ""
    data: bytes = copy.SerializeToString(deterministic=True)
    return data
