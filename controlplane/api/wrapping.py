"""Handlers wrapped once, when they are registered.

`WrappingServer` is the server as the generated `add_*Servicer_to_server` functions see it:
every handler they register comes out changed by `wrap(handler, method)`. Wrapping at
registration rather than in a server interceptor keeps the per-call cost to the wrapper
itself: an aio interceptor adds a coroutine per call and, for registered methods, grpc's
slower generic lookup. The error map (`failures.ErrorMapped`) and the access rules
(`access.Guarded`) are two such wrappings, stacked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

# (handler, "/package.Service/Method") -> the handler to serve instead.
Wrap = Callable[[Any, str], Any]


class WrappingServer:
    def __init__(self, server: Any, wrap: Wrap) -> None:
        self._server = server
        self._wrap = wrap

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_Generic(h, self._wrap) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        wrapped = {name: self._wrap(h, f"/{service}/{name}") for name, h in handlers.items()}
        # Missing from the grpc stubs, present on grpc.aio.Server since grpcio 1.62.
        self._server.add_registered_method_handlers(service, wrapped)


class _Generic(grpc.GenericRpcHandler):
    """A generic handler whose handlers are wrapped the first time each method is asked."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrap: Wrap) -> None:
        self._inner = inner
        self._wrap = wrap
        self._wrapped: dict[str, Any] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        found = self._wrapped.get(method)
        if found is None:
            handler = self._inner.service(handler_call_details)
            if handler is None:
                return None
            found = self._wrapped[method] = self._wrap(handler, method)
        return found
