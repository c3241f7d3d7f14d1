"""Real local servers for the connector tests: an HTTP API and an SMTP server, on port 0.

Each records what it received, with the time it arrived (measured here, at the server), so
that a test can say how many calls a service saw and how far apart.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

# A held answer is released at teardown at the latest; this bounds a test that forgot to.
HOLD_LIMIT_SECONDS = 120.0


@dataclass(frozen=True)
class Received:
    """One request as the fake API saw it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """One scripted answer.

    Attributes:
        status: The HTTP status.
        body: JSON-encoded unless it is bytes or str.
        headers: Extra response headers.
        echo_header: A request header whose value is put in the body as ``{"echo": ...}``.
        hold: When set, the answer waits until the event is set (a slow or hung service).
    """

    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    echo_header: str | None = None
    hold: threading.Event | None = None


class FakeApi:
    """A threaded HTTP server on 127.0.0.1:<port 0> answering scripted replies per path.

    The replies of a path are used in order; the last one repeats. A path with no script
    answers 200 ``{"ok": true}``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Reply]] = {}
        self._received: list[Received] = []
        self._holds: list[threading.Event] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                received = Received(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                reply = api._record(path, received)
                if reply.hold is not None:
                    reply.hold.wait(HOLD_LIMIT_SECONDS)
                payload = reply.body
                if reply.echo_header is not None:
                    payload = {"echo": received.headers.get(reply.echo_header.lower())}
                if isinstance(payload, str):
                    data, content_type = payload.encode(), "text/plain; charset=utf-8"
                elif isinstance(payload, bytes):
                    data, content_type = payload, "application/octet-stream"
                else:
                    data, content_type = json.dumps(payload).encode(), "application/json"
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_any

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads `received`, not stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll, so that stopping the server at teardown takes no noticeable time.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[path] = list(replies)
            self._holds += [r.hold for r in replies if r.hold is not None]

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path.split("?")[0] == path]

    def _record(self, path: str, received: Received) -> Reply:
        with self._lock:
            self._received.append(received)
            replies = self._scripts.get(path)
            if not replies:
                return Reply()
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def start(self) -> FakeApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        for hold in self._holds:
            hold.set()
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class Mail:
    """One message the SMTP server accepted."""

    sender: str
    recipients: list[str]
    message: Message
    login: str | None


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1:<port 0> keeping every message it accepts.

    Args:
        password: When set, AUTH is offered (over plain text, it is a test) and a login
            must give this password.
        refuse: Recipients answered with 550.
    """

    def __init__(self, password: str | None = None, refuse: tuple[str, ...] = ()) -> None:
        self.messages: list[Mail] = []
        self.logins: list[tuple[str, str]] = []
        self._refuse = refuse
        self._password = password
        options: dict[str, Any] = {}
        if password is not None:
            options = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = _PortZeroController(self, hostname="127.0.0.1", port=0, **options)

    @property
    def port(self) -> int:
        return self._controller.port

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=password == self._password, handled=False, auth_data=login)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self._refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        login = session.auth_data if isinstance(session.auth_data, str) else None
        self.messages.append(
            Mail(
                sender=str(envelope.mail_from),
                recipients=list(envelope.rcpt_tos),
                message=message_from_bytes(content),
                login=login,
            )
        )
        return "250 Message accepted for delivery"


class _PortZeroController(Controller):
    """aiosmtpd's Controller, bound to a port the OS picks.

    The stock controller connects to its configured port to start the SMTP protocol, which
    with port 0 is no port at all; the bound one is read from the server first.
    """

    def _trigger_server(self) -> None:
        assert self.server is not None
        # Typed as AbstractServer, which has no `sockets`; the loop made an asyncio.Server.
        server = cast(asyncio.Server, self.server)
        self.port = int(server.sockets[0].getsockname()[1])
        super()._trigger_server()
