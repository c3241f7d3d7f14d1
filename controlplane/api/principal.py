"""Who is calling. Until credentials exist the caller is identified by its peer address."""

from __future__ import annotations

import grpc


def principal_of(context: grpc.aio.ServicerContext) -> str:
    return f"anonymous@{context.peer()}"
