"""A fake payment provider: a real HTTP server that charges once per idempotency key.

Like a real provider (Stripe, Adyen), `POST /v1/charges` with an `Idempotency-Key` header
charges the first time it sees the key and answers every later request with that key with
the stored charge, without charging again; the same key with other parameters is refused.
A test makes it hold its answers (`hold_answers`) so that it can crash a process at the
exact moment the provider has charged but the step has not yet heard back, the window in
which a naive retry charges a customer twice.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A held answer waits at most this long; the tests release it much sooner.
HOLD_LIMIT_SECONDS = 120.0


@dataclass(frozen=True)
class ChargeRequest:
    """One request the provider received, before it answered."""

    idempotency_key: str
    customer: str
    amount: int
    charge_id: str
    replayed: bool
    time: float


class FakePaymentApi:
    """The provider, listening on 127.0.0.1 on a port the OS picks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[ChargeRequest] = []
        self._charges: dict[str, dict[str, Any]] = {}
        self._answers_to_hold = 0
        self._released = threading.Event()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-payment-api", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def hold_answers(self, count: int) -> None:
        """The next `count` requests are processed at once but answered only at `release`."""
        with self._lock:
            self._answers_to_hold = count
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def requests(self) -> list[ChargeRequest]:
        with self._lock:
            return list(self._requests)

    def charges(self) -> list[dict[str, Any]]:
        """Every distinct charge made, in order."""
        with self._lock:
            return list(self._charges.values())

    def charged(self, customer: str) -> int:
        """The total amount charged to `customer`."""
        return sum(c["amount"] for c in self.charges() if c["customer"] == customer)

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _charge(self, key: str, customer: str, amount: int) -> tuple[int, dict[str, Any], bool]:
        """(HTTP status, body, whether to hold the answer) for one charge request."""
        with self._lock:
            stored = self._charges.get(key)
            if stored is not None and (stored["customer"], stored["amount"]) != (customer, amount):
                return 422, {"error": "idempotency key reused with other parameters"}, False
            replayed = stored is not None
            if stored is None:
                stored = {"id": f"ch_{len(self._charges) + 1}", "customer": customer}
                stored["amount"] = amount
                self._charges[key] = stored
            self._requests.append(
                ChargeRequest(key, customer, amount, stored["id"], replayed, time.time())
            )
            hold = self._answers_to_hold > 0
            if hold:
                self._answers_to_hold -= 1
            return 200, dict(stored, replayed=replayed), hold


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's listen backlog is 5: hundreds of steps calling at once overflowed it and
    # a connection was reset now and then, an outage the test did not ask for.
    request_queue_size = 1024

    def __init__(self, api: FakePaymentApi) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The client may be a worker the test SIGKILLed while its answer was held: writing
        # to its closed socket fails, which is what the test wanted.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        if self.path != "/v1/charges":
            self._answer(404, {"error": f"no route {self.path}"})
            return
        key = self.headers.get("Idempotency-Key", "")
        if not key:
            self._answer(400, {"error": "an Idempotency-Key header is required"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            customer, amount = str(body["customer"]), int(body["amount"])
        except (ValueError, KeyError, TypeError) as exc:
            self._answer(400, {"error": f"bad charge request: {exc}"})
            return
        api = self.server.api
        status, answer, hold = api._charge(key, customer, amount)
        if hold:
            api._released.wait(HOLD_LIMIT_SECONDS)
        self._answer(status, answer)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
