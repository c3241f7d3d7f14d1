"""One HTTP request and what its ending means for a retry, shared by the HTTP connectors.

The client is httpx: a maintained client with one timeout model for connect, read and
write, and exceptions that say how far a request got (a refused connection never reached
the service; a read timeout may have), which is what deduplication needs to know.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from surefoot_connectors.call import ConnectorFailure
from surefoot_connectors.redaction import Redactor

# Built once: loading the CA bundle for every request would cost more than the request.
_TLS = ssl.create_default_context()
# Response headers that carry credentials; they do not belong in a run's history.
_HIDDEN_RESPONSE_HEADERS = frozenset({"set-cookie", "set-cookie2"})
# An answer that asks for longer than this is an error on its side, not a plan.
MAX_RETRY_AFTER_SECONDS = 86_400.0
# What a failure message quotes of an error response's body.
_ERROR_BODY_CHARS = 300
DEFAULT_MAX_RESPONSE_BYTES = 1_048_576

# Raised before a single byte went out: the service cannot have acted.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
# A gateway that answers these gave up on the service behind it, which may have acted on
# the request all the same: unlike other error answers, they say nothing about the effect.
_GATEWAY_GAVE_UP = frozenset({502, 504})
# Request headers that are credentials even when no secret reference is in them.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# RFC 9110 delay-seconds: ASCII digits only (str.isdigit() takes '²', which float() refuses).
_DELAY_SECONDS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Request:
    """What to send; built from a connector's input with its secrets resolved."""

    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, Any] | None = None
    json_body: Any = None
    text_body: str | None = None
    timeout: float = 30.0
    follow_redirects: bool = False
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    # The worker's secrets: kept off redirects to other hosts, and out of cut text.
    redactor: Redactor = field(default_factory=lambda: Redactor(()))


@dataclass(frozen=True)
class Response:
    """What came back, read up to the size limit."""

    status: int
    reason: str
    headers: httpx.Headers
    content: bytes
    truncated: bool

    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def body(self) -> Any:
        """JSON when the service says it is JSON (and it parses), else text; None if empty."""
        if not self.content:
            return None
        media_type = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if not self.truncated and (
            media_type == "application/json" or media_type.endswith("+json")
        ):
            try:
                return json.loads(self.content)
            except ValueError:
                pass  # a service that mislabels its body: keep it as text
        return self.text()

    def visible_headers(self) -> dict[str, str]:
        """The response headers, names lower-cased, repeated ones joined, cookies left out."""
        visible: dict[str, str] = {}
        for name, value in self.headers.multi_items():
            key = name.lower()
            if key in _HIDDEN_RESPONSE_HEADERS:
                continue
            visible[key] = f"{visible[key]}, {value}" if key in visible else value
        return visible


def send(request: Request) -> Response:
    """Send `request` and read the response (at most ``max_response_bytes`` of its body).

    A redirect to another origin is followed without the headers that carry a secret or a
    credential, and not at all if the body it would resend carries a secret.

    Raises:
        ConnectorFailure: If no response came back: retryable, and ``may_have_acted`` unless
            the request certainly never left (connection refused, connect timeout).
    """
    try:
        hooks: dict[str, list[Callable[[httpx.Request], None]]] = {}
        if request.follow_redirects:
            hooks["request"] = [_redirect_guard(request)]
        options: dict[str, Any] = {}
        if request.json_body is not None:
            options["json"] = request.json_body
        elif request.text_body is not None:
            options["content"] = request.text_body.encode("utf-8")
        with (
            httpx.Client(
                timeout=request.timeout,
                verify=_TLS,
                follow_redirects=request.follow_redirects,
                trust_env=False,
                event_hooks=hooks,
            ) as client,
            client.stream(
                request.method,
                request.url,
                headers=request.headers,
                params=request.query,
                **options,
            ) as answer,
        ):
            content, truncated = _read_limited(answer, request.max_response_bytes, request.redactor)
            return Response(
                status=answer.status_code,
                reason=answer.reason_phrase,
                headers=answer.headers,
                content=content,
                truncated=truncated,
            )
    except _NOT_SENT as exc:
        raise ConnectorFailure(
            f"{request.method} {_shown_url(request.url)}: {_reason(exc)}",
            type=f"Http{type(exc).__name__}",
            retryable=True,
            may_have_acted=False,
        ) from None
    except (
        httpx.UnsupportedProtocol,
        httpx.LocalProtocolError,
        httpx.InvalidURL,
        UnicodeError,
    ) as exc:
        # The request could not be built (a bad URL or header, a header value that is not
        # ASCII, a host name IDNA refuses): no retry can fix it, and nothing was sent.
        raise ConnectorFailure(
            f"{request.method} {_shown_url(request.url)}: cannot send this request: {_reason(exc)}",
            type="ConnectorInputInvalid",
            retryable=False,
            may_have_acted=False,
        ) from None
    except httpx.TooManyRedirects as exc:
        raise ConnectorFailure(
            f"{request.method} {_shown_url(request.url)}: {_reason(exc)}",
            type="HttpTooManyRedirects",
            retryable=False,
            may_have_acted=True,
        ) from None
    except httpx.RequestError as exc:
        # The request went out (or partly): the service may have acted on it.
        raise ConnectorFailure(
            f"{request.method} {_shown_url(request.url)}: no complete answer: {_reason(exc)}",
            type=f"Http{type(exc).__name__}",
            retryable=True,
            may_have_acted=True,
        ) from None


def _redirect_guard(request: Request) -> Callable[[httpx.Request], None]:
    """An httpx request hook that keeps secrets from following a redirect to another origin.

    httpx itself drops only ``Authorization`` (and cookies); a secret may be in any header
    (``X-Api-Key``), and a 307 or 308 resends the body as it is.
    """
    origin = httpx.URL(request.url)

    def guard(hop: httpx.Request) -> None:
        if _same_origin(origin, hop.url):
            return
        for name in list(hop.headers):
            if name.lower() in _CREDENTIAL_HEADERS or request.redactor.finds(hop.headers[name]):
                del hop.headers[name]
        body = hop.read()
        if body and request.redactor.finds(body.decode("utf-8", errors="replace")):
            raise ConnectorFailure(
                f"{request.method} {_shown_url(request.url)} was redirected to another origin, "
                f"{hop.url.scheme}://{hop.url.netloc.decode('ascii')}, and the request body it "
                "would resend holds a secret: not followed",
                type="HttpRedirectRefused",
                retryable=False,
                # The service answered with a redirect; the body did not leave.
                may_have_acted=False,
            )

    return guard


def _same_origin(origin: httpx.URL, url: httpx.URL) -> bool:
    if (url.scheme, url.host, url.port) == (origin.scheme, origin.host, origin.port):
        return True
    # http:// to https:// on the same host and default ports, as httpx allows for
    # Authorization: the credential goes to the same service, better protected.
    return (
        origin.scheme == "http"
        and url.scheme == "https"
        and url.host == origin.host
        and origin.port in (None, 80)
        and url.port in (None, 443)
    )


def _read_limited(answer: httpx.Response, limit: int, redactor: Redactor) -> tuple[bytes, bool]:
    # Read past the limit by the longest secret form, and redact before cutting: a secret
    # that straddles the cut would otherwise stay as a prefix the later redaction misses.
    wanted = limit + redactor.longest_bytes
    chunks: list[bytes] = []
    size = 0
    for chunk in answer.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > wanted:
            break
    content = b"".join(chunks)
    if size <= limit:
        return content, False
    if redactor:
        content = redactor.text(content.decode("utf-8", errors="replace")).encode("utf-8")
    return content[:limit], True


def raise_for_status(request: Request, response: Response) -> None:
    """Map a non-2xx status to a failure; return for 2xx.

    429 and 5xx are retryable and honour ``Retry-After``; any other status (3xx not
    followed, 4xx) is not retryable. Such an answer is definite: the service said what it
    did, so ``may_have_acted`` is False and a deduplicated call may be made again; except
    502 and 504, a gateway's word that the service behind it did not answer in time.

    Raises:
        ConnectorFailure: Of type ``HttpStatus<code>``.
    """
    status = response.status
    if 200 <= status < 300:
        return
    retryable = status == 429 or status >= 500
    retry_after = parse_retry_after(response.headers.get("retry-after")) if retryable else 0.0
    message = f"{request.method} {_shown_url(request.url)} answered {status} {response.reason}"
    if retry_after:
        message += f" (retry after {retry_after:g} s)"
    if 300 <= status < 400 and response.headers.get("location"):
        message += f" to {response.headers['location']}"
    # Redacted before it is put on one line and cut, either of which would leave a secret
    # in a form the step wrapper's redaction no longer recognises.
    snippet = " ".join(request.redactor.text(response.text()).split())[:_ERROR_BODY_CHARS]
    if snippet:
        message += f": {snippet}"
    raise ConnectorFailure(
        message,
        type=f"HttpStatus{status}",
        retryable=retryable,
        may_have_acted=status in _GATEWAY_GAVE_UP,
        retry_after=retry_after,
    )


def parse_retry_after(value: str | None, now: datetime.datetime | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Args:
        value: The header's value, or None.
        now: The current time (for tests); the clock by default.

    Returns:
        The delay in seconds, at most a day; 0 when absent, in the past or unreadable.
    """
    if not value:
        return 0.0
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        # OverflowError: a date whose numbers do not fit a C integer ('99999999999999999999').
        return 0.0
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=datetime.UTC)
    current = now or datetime.datetime.now(datetime.UTC)
    return min(max(0.0, (when - current).total_seconds()), MAX_RETRY_AFTER_SECONDS)


def _shown_url(url: str) -> str:
    """The URL without its query string: long, and where API keys are often put."""
    return url.split("?", 1)[0]


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
