"""Helpers of the request-id tests: a run that stays put, a call sent twice, refusals."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from surefoot_worker.authoring import definition_from_dict

from tests.support.approval_auth import OPERATOR, AuthControlPlane, bearer
from tests.support.runs import events_of, history, register, start_run

REPEATED = ("surefoot-repeated", "true")


def held(name: str) -> Any:
    """A workflow that waits for a manager's approval: it stays put while a test acts on it."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {"id": "sign", "approval": {"title": "sign it", "approvers": ["group:managers"]}}
            ],
        }
    )


def held_run(server: AuthControlPlane) -> str:
    name = f"held-{uuid.uuid4().hex[:8]}"
    register(server.stub, held(name))
    return start_run(server.stub, name, {})


def twice(method: Any, request: Message, token: str = OPERATOR) -> tuple[Any, Any]:
    """The answers to `request` sent twice; the second must say it repeats the first."""
    first = method(request, timeout=30, metadata=bearer(token))
    second, call = method.with_call(request, timeout=30, metadata=bearer(token))
    assert REPEATED in tuple(call.trailing_metadata()), "the repeat is marked as one"
    assert second == first, "the repeat is answered with the first answer"
    return first, second


def refusal(call: Callable[[], Any]) -> grpc.RpcError:
    try:
        call()
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the call was served; it must be refused")


def count(server: AuthControlPlane, run_id: str, kind: str) -> int:
    return len(events_of(history(server.stub, run_id), kind))
