"""One ledger of request ids per console: a change left without an answer on one screen and
asked again on another (the dead-letter screen's client, then the run screen's) goes out
under the same id, so the control plane acts once; an answer settles it for both."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from console.client import ConsoleError, ControlPlane
from console.run_client import OutcomeUnknown, RunClient


class _NoAnswer(grpc.RpcError):
    """What a call that got no answer in time raises."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return "Deadline Exceeded"


class _Refused(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.FAILED_PRECONDITION

    def details(self) -> str:
        return "step b is not dead-lettered"


def test_a_change_unanswered_on_one_screen_keeps_its_id_on_another(unused_address: str) -> None:
    control = ControlPlane(unused_address, "default")
    run_client = RunClient(control)
    sent: list[str] = []
    answers: list[Exception | None] = [_NoAnswer(), None, _Refused(), None]

    def retry_step(request: ws.RetryStepRequest, **options: object) -> ws.RetryStepResponse:
        sent.append(request.request_id)
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        return ws.RetryStepResponse()

    control.workflows.RetryStep = retry_step  # type: ignore[method-assign,assignment]
    run_client._stub.RetryStep = retry_step  # type: ignore[method-assign,assignment]

    async def scenario() -> None:
        # The dead-letter screen's retry gets no answer; the run screen asks the same.
        with pytest.raises(ConsoleError):
            await control.retry_step("r1", "b", None, "after the outage")
        await run_client.retry_step("r1", "b", "after the outage")
        # Answered: the same change asked again is a new request, refused this time...
        with pytest.raises(ConsoleError) as refused:
            await run_client.retry_step("r1", "b", "after the outage")
        assert not isinstance(refused.value, OutcomeUnknown)
        # ... which settles it too: the next one is new again.
        await control.retry_step("r1", "b", None, "after the outage")

    asyncio.run(scenario())
    run_client.close()
    control.close()
    assert sent[0] == sent[1], "the same change while its outcome was unknown"
    assert len(set(sent[1:])) == 3, "each answer (done or refused) settled the id"
    assert control.request_ids.pending("retry r1:b") is None
