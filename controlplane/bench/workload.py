"""What every bench mode runs: a 3-step no-op workflow, started through an authenticated stub."""

from __future__ import annotations

from typing import Any

from surefoot.v1 import common_pb2, definition_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli.channels import ChannelOption, Connection

STEPS = 3

# A killed control plane refuses connections at once; gRPC's default reconnect backoff (1 s,
# growing to 2 min) would then make the bench's own client, not the workers, the thing a
# restart's gap measures.
CLIENT_CHANNEL_OPTIONS: list[ChannelOption] = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
]


def definition(name: str) -> definition_pb2.WorkflowDefinition:
    nodes = []
    for index in range(STEPS):
        nodes.append(
            definition_pb2.Node(
                id=f"s{index + 1}",
                next=f"s{index + 2}" if index + 1 < STEPS else "",
                task=definition_pb2.TaskNode(
                    step_type="bench-noop", idempotency=common_pb2.IDEMPOTENCY_NATURAL
                ),
            )
        )
    return definition_pb2.WorkflowDefinition(name=name, version="1", nodes=nodes)


def start_request(name: str, request_id: str) -> ws.StartRunRequest:
    return ws.StartRunRequest(
        workflow_name=name,
        input=common_pb2.Payload(encoding="json/plain", data=b"{}"),
        request_id=request_id,
    )


class Authenticated:
    """A stub whose every call carries the connection's token."""

    def __init__(self, stub: Any, connection: Connection) -> None:
        self._stub = stub
        self._metadata = connection.metadata

    def __getattr__(self, name: str) -> Any:
        rpc = getattr(self._stub, name)

        def call(request: Any) -> Any:
            return rpc(request, metadata=self._metadata)

        return call
