"""A local OpenAI-compatible chat-completions server that answers from a script.

`surefoot dev` runs one so that its AI example needs no network and no key; the tests run
one per test to script exactly what a model endpoint does: a valid reply, invalid JSON, a
reply that breaks the schema, a 429 with Retry-After, a 500, a reply slower than the call's
timeout. It speaks the real protocol (`POST /v1/chat/completions`, JSON body, `usage`), so
the connector talks to it with the maintained `openai` client exactly as to a real endpoint.

Replies are queued per model name (`script`); a request whose model has nothing queued is
answered by `responder` (by default: 500, so that an unscripted call is loud).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A delayed reply waits at most this long: a test's client has long given up by then.
MAX_DELAY_SECONDS = 120.0


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Attributes:
        status: The HTTP status.
        content: With 200, the assistant message's content (any text, valid JSON or not).
        body: With another status, the JSON error body.
        headers: Extra response headers (e.g. Retry-After).
        delay: Seconds to wait before answering (a timeout).
        tokens: (prompt, completion) tokens reported in `usage`.
    """

    status: int = 200
    content: str = ""
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    tokens: tuple[int, int] = (10, 5)

    @classmethod
    def json(cls, value: Any, **kwargs: Any) -> Reply:
        return cls(content=json.dumps(value), **kwargs)

    @classmethod
    def text(cls, content: str, **kwargs: Any) -> Reply:
        return cls(content=content, **kwargs)

    @classmethod
    def error(cls, status: int, message: str = "", **kwargs: Any) -> Reply:
        body = {"error": {"message": message or f"scripted {status}", "type": "scripted"}}
        return cls(status=status, body=body, **kwargs)

    @classmethod
    def rate_limited(cls, retry_after: float) -> Reply:
        return cls.error(429, "rate limited", headers={"Retry-After": f"{retry_after:g}"})


@dataclass(frozen=True)
class ModelRequest:
    """One request as the server received it."""

    model: str
    messages: list[dict[str, Any]]
    body: dict[str, Any]
    headers: dict[str, str]
    time: float


Responder = Callable[[ModelRequest], Reply]


def unscripted(request: ModelRequest) -> Reply:
    return Reply.error(500, f"nothing scripted for model {request.model!r}")


class ModelServer:
    """The server, listening on `host` on `port` (0: one the OS picks) until `close`."""

    def __init__(
        self, responder: Responder = unscripted, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.responder = responder
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._requests: list[ModelRequest] = []
        self._closing = threading.Event()
        self._server = _Server(self, host, port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="model-server", daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        """What a ModelConnection's base_url names: `http://host:port/v1`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, model: str, replies: Iterable[Reply]) -> None:
        """Queue replies for requests naming `model`, answered in order."""
        with self._lock:
            self._scripts[model].extend(replies)

    def requests(self, model: str | None = None) -> list[ModelRequest]:
        """The requests received (for `model` only, when given), in order."""
        with self._lock:
            return [r for r in self._requests if model is None or r.model == model]

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self, request: ModelRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            queued = self._scripts.get(request.model)
            if queued:
                return queued.popleft()
        return self.responder(request)


def completion(model: str, reply: Reply) -> dict[str, Any]:
    """The chat.completion object for a 200 reply."""
    prompt, completion_tokens = reply.tokens
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        },
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, model_server: ModelServer, host: str, port: int) -> None:
        super().__init__((host, port), _Handler)
        self.model_server = model_server

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a delayed reply closed its socket: expected.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm the body waited for the
    # client's delayed ACK, about 45 ms on every reply (51.5 ms per call, 6.6 ms without).
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
            return
        try:
            body = json.loads(raw or b"{}")
            model, messages = str(body["model"]), list(body["messages"])
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": {"message": f"bad request: {exc}"}}, {})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = ModelRequest(model, messages, body, headers, time.time())
        served = self.server.model_server
        reply = served._answer(request)
        if reply.delay:
            served._closing.wait(min(reply.delay, MAX_DELAY_SECONDS))
        if reply.status == 200:
            self._send(200, completion(model, reply), reply.headers)
        else:
            self._send(reply.status, reply.body or {}, reply.headers)

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
