"""Request ids of the console's writes: a change retried after an unknown outcome acts once.

An operator who pressed `r` and saw "no answer within 5 s" presses `r` again. If the first
call did reach the server, a fresh request id would retry the step a second time; the same id
makes the server answer with the first call's outcome instead. So the id of a change is kept
while its outcome is unknown and forgotten once an answer (success or refusal) arrives: the
same change asked later, deliberately, is a new request.
"""

from __future__ import annotations

import uuid
from typing import Any


class RequestIds:
    """Intent ("retry r1:b") -> the id of its call whose outcome is still unknown."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[bytes, str]] = {}

    def id_for(self, intent: str, request: Any) -> str:
        """The id to send: the pending one when this exact request was sent before."""
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
