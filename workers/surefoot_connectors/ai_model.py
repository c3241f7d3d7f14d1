"""One chat-completions request through the maintained ``openai`` client, and how its
failures are classified.

The client's own retries are off (``max_retries=0``): a failed call fails the attempt, and
Surefoot's retry policy (with the service's Retry-After) decides when to try again, so that
every try is visible in the run's history.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import openai

STRUCTURED_OUTPUT_MODES = ("json_schema", "json_object", "none")
# Clients kept for reuse (one per endpoint and key): a worker talks to a few endpoints.
CLIENTS_KEPT = 32
# What a response_format's json_schema.name may hold: the node id is used, sanitized.
_SCHEMA_NAME_LIMIT = 64


@dataclass(frozen=True)
class Connection:
    """A ModelConnection as the task input carries it."""

    name: str
    base_url: str
    model: str
    api_key_secret: str = ""
    structured_output: str = "json_schema"
    input_price_per_million: float = 0.0
    output_price_per_million: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Connection:
        return cls(
            name=str(value.get("name", "")),
            base_url=str(value.get("base_url", "")),
            model=str(value.get("model", "")),
            api_key_secret=str(value.get("api_key_secret") or ""),
            structured_output=str(value.get("structured_output") or "json_schema"),
            input_price_per_million=float(value.get("input_price_per_million") or 0.0),
            output_price_per_million=float(value.get("output_price_per_million") or 0.0),
            headers=dict(value.get("headers") or {}),
        )

    @property
    def priced(self) -> bool:
        return self.input_price_per_million > 0 or self.output_price_per_million > 0

    def cost(self, tokens_in: int, tokens_out: int) -> float | None:
        """The call's cost from the connection's prices; None when it declares none."""
        if not self.priced:
            return None
        return (
            tokens_in * self.input_price_per_million + tokens_out * self.output_price_per_million
        ) / 1_000_000


@dataclass(frozen=True)
class Request:
    """What one call sends besides the messages."""

    schema: Mapping[str, Any]
    schema_name: str
    max_tokens: int
    temperature: float
    timeout: float
    headers: Mapping[str, str]
    api_key: str


@dataclass(frozen=True)
class ModelReply:
    """A 200 answer."""

    content: str
    tokens_in: int
    tokens_out: int
    latency_ms: int


class CallFailed(Exception):
    """No usable answer: the status recorded on the call and the failure it means.

    Attributes:
        status: ``http_<code>``, ``timeout`` or ``connection_error``.
        error_type: AiRateLimited, AiTimeout, AiServerError or AiRequestRejected.
        retryable: Whether another attempt may succeed.
        retry_after: The answer's Retry-After in seconds, if it gave one.
        latency_ms: How long the call took.
    """

    def __init__(
        self,
        message: str,
        *,
        status: str,
        error_type: str,
        retryable: bool,
        retry_after: float | None,
        latency_ms: int,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.retryable = retryable
        self.retry_after = retry_after
        self.latency_ms = latency_ms


def response_format(mode: str, schema: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The ``response_format`` asking for JSON as the connection says, or None."""
    if mode == "json_object":
        return {"type": "json_object"}
    if mode == "none":
        return None
    return {
        "type": "json_schema",
        "json_schema": {"name": schema_name(name), "schema": dict(schema), "strict": True},
    }


def schema_name(node: str) -> str:
    """A node id made a valid json_schema name (``[A-Za-z0-9_-]``, at most 64)."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in node)
    return cleaned[:_SCHEMA_NAME_LIMIT] or "output"


def call_model(
    connection: Connection, messages: list[dict[str, str]], request: Request
) -> ModelReply:
    """Send one chat completion and return its reply.

    Raises:
        CallFailed: For an error answer, a timeout or no connection.
    """
    headers: dict[str, Any] = dict(request.headers)
    if not request.api_key:
        # The client insists on a key; a connection without one sends no Authorization.
        headers["Authorization"] = openai.Omit()
    arguments: dict[str, Any] = {
        "model": connection.model,
        "messages": messages,
        "temperature": request.temperature,
        "extra_headers": headers,
    }
    if request.max_tokens > 0:
        arguments["max_tokens"] = request.max_tokens
    wanted = response_format(connection.structured_output, request.schema, request.schema_name)
    if wanted is not None:
        arguments["response_format"] = wanted
    started = time.monotonic()
    client = _client(connection.base_url, request.api_key or "none")
    try:
        completion = client.chat.completions.create(**arguments, timeout=request.timeout)
    except openai.APIError as exc:
        raise _classified(exc, _elapsed_ms(started)) from None
    latency = _elapsed_ms(started)
    try:
        # The client builds its objects without validating them: a 2xx answer that is not a
        # chat completion (a proxy's page, a base_url without /v1) comes back as text or
        # with fields missing.
        content = completion.choices[0].message.content or "" if completion.choices else ""
        usage = completion.usage
        tokens_in = int(usage.prompt_tokens or 0) if usage else 0
        tokens_out = int(usage.completion_tokens or 0) if usage else 0
    except (AttributeError, IndexError, TypeError, ValueError):
        raise CallFailed(
            "the model endpoint answered with something that is not a chat completion "
            "(does base_url name the API, e.g. ending in /v1?)",
            status="http_200",
            error_type="AiServerError",
            retryable=True,
            retry_after=None,
            latency_ms=latency,
        ) from None
    return ModelReply(
        content=str(content), tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=latency
    )


@functools.lru_cache(maxsize=CLIENTS_KEPT)
def _client(base_url: str, api_key: str) -> openai.OpenAI:
    """A client per endpoint and key, kept: building one (its TLS context, its connection
    pool) costs tens of milliseconds, more than a call to a nearby model server, and its
    pool keeps the connections alive across calls. The client is safe to share between the
    worker's threads; one pushed out of the cache is closed when no call holds it any more."""
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)


def _classified(exc: openai.APIError, latency_ms: int) -> CallFailed:
    if isinstance(exc, openai.APITimeoutError):
        return CallFailed(
            "the model call timed out",
            status="timeout",
            error_type="AiTimeout",
            retryable=True,
            retry_after=None,
            latency_ms=latency_ms,
        )
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        retry_after = _retry_after(exc.response.headers.get("retry-after"))
        message = f"the model endpoint answered {code}: {_error_message(exc)}"
        if code == 429 or (code == 503 and retry_after is not None):
            error_type, retryable = "AiRateLimited", True
        elif code == 408:
            error_type, retryable = "AiTimeout", True
        elif code >= 500:
            error_type, retryable = "AiServerError", True
        else:
            error_type, retryable = "AiRequestRejected", False
        return CallFailed(
            message,
            status=f"http_{code}",
            error_type=error_type,
            retryable=retryable,
            retry_after=retry_after,
            latency_ms=latency_ms,
        )
    # APIConnectionError (refused, reset, DNS), or an answer that is no chat completion (a
    # proxy's page): both may be over on the next attempt.
    if isinstance(exc, openai.APIConnectionError):
        problem = "the model endpoint could not be reached"
    else:
        problem = "the model endpoint's answer could not be read"
    return CallFailed(
        f"{problem}: {type(exc).__name__}: {' '.join(str(exc).split())[:500]}",
        status="connection_error",
        error_type="AiServerError",
        retryable=True,
        retry_after=None,
        latency_ms=latency_ms,
    )


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return " ".join(inner["message"].split())[:500]
    return " ".join(str(exc.message).split())[:500]


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is read too, as a delay from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
