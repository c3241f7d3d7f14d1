"""What the WatchRun tests share: a workflow that waits for events, and reading a stream."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import grpc
from surefoot.v1 import (
    approval_pb2,
    common_pb2,
    definition_pb2,
    run_pb2,
    workflow_service_pb2_grpc,
)
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

Stub = workflow_service_pb2_grpc.WorkflowServiceStub
Metadata = tuple[tuple[str, str], ...]
GATES = "watch-two-gates"
CALL_TIMEOUT = 30.0
# A stream's own deadline: long enough for worker processes to run every step on a loaded
# machine; a stream that never ends fails the test at it instead of hanging.
STREAM_TIMEOUT = 120.0


def two_gates(name: str = GATES) -> definition_pb2.WorkflowDefinition:
    """first → second: two waits for an external event, so that a test commits each change
    of the run itself (SendEvent), no worker involved."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "first",
                    "wait_event": {"event_name": "first", "correlation_key": "input.key"},
                    "next": "second",
                },
                {
                    "id": "second",
                    "wait_event": {"event_name": "second", "correlation_key": "input.key"},
                },
            ],
        }
    )


@dataclass(frozen=True)
class GatedRun:
    run_id: str
    # The correlation key of its events.
    key: str

    def release(self, stub: Stub, gate: str, namespace: str = "") -> None:
        """Sends the event the run's wait `gate` ("first" or "second") waits for."""
        request = approval_pb2.SendEventRequest(
            namespace=namespace,
            event_name=gate,
            correlation_key=self.key,
            payload=common_pb2.Payload(encoding="json/plain", data=b"{}"),
        )
        stub.SendEvent(request, timeout=CALL_TIMEOUT)


def start_gated_run(stub: Stub, namespace: str = "", metadata: Metadata = ()) -> GatedRun:
    stub.RegisterDefinition(
        ws.RegisterDefinitionRequest(namespace=namespace, definition=two_gates()),
        timeout=CALL_TIMEOUT,
        metadata=metadata,
    )
    key = uuid.uuid4().hex
    request = ws.StartRunRequest(
        namespace=namespace,
        workflow_name=GATES,
        input=common_pb2.Payload(encoding="json/plain", data=json.dumps({"key": key}).encode()),
    )
    started = stub.StartRun(request, timeout=CALL_TIMEOUT, metadata=metadata)
    return GatedRun(str(started.run_id), key)


def watch(
    stub: Stub, run_id: str, after_seq: int = 0, keep_open: bool = False, **request: str
) -> Stream:
    """The call's stream: iterate it, cancel() it to hang up."""
    call = ws.WatchRunRequest(run_id=run_id, after_seq=after_seq, keep_open=keep_open, **request)
    return Stream(stub.WatchRun(call, timeout=STREAM_TIMEOUT))


class Stream:
    """A WatchRun call as an iterator of its messages, which `next` takes one by one."""

    def __init__(self, call: grpc.CallIterator[ws.WatchRunResponse]) -> None:
        self.call = call
        self._messages = iter(call)

    def __iter__(self) -> Iterator[ws.WatchRunResponse]:
        return self

    def __next__(self) -> ws.WatchRunResponse:
        return next(self._messages)

    def cancel(self) -> None:
        self.call.cancel()


def events_of(messages: Iterable[ws.WatchRunResponse]) -> list[run_pb2.HistoryEvent]:
    return [event for message in messages for event in message.events]


def history(stub: Stub, run_id: str) -> list[run_pb2.HistoryEvent]:
    request = ws.GetRunHistoryRequest(run_id=run_id)
    return list(stub.GetRunHistory(request, timeout=CALL_TIMEOUT).events)


def type_name(event: run_pb2.HistoryEvent) -> str:
    return run_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_")


def read_until(
    stream: Iterator[ws.WatchRunResponse], event_type: str, node_id: str = ""
) -> list[ws.WatchRunResponse]:
    """Messages of `stream` up to the one holding an event of `event_type` (of `node_id`)."""
    messages = []
    for message in stream:
        messages.append(message)
        if any(
            type_name(e) == event_type and (not node_id or e.node_id == node_id)
            for e in message.events
        ):
            return messages
    raise AssertionError(f"the stream ended before a {event_type} event: {messages}")
