"""The google.rpc.Status a refused call carries in its trailing metadata."""

from __future__ import annotations

from typing import cast

import grpc
from google.rpc import status_pb2
from grpc_status import rpc_status


def rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    """The google.rpc.Status of a refused call; None when the server sent none.

    The error a sync stub raises is also the grpc.Call that ended; the grpc stubs type it
    as a bare RpcError, and `from_call` asks for the Call.
    """
    return rpc_status.from_call(cast(grpc.Call, error))
