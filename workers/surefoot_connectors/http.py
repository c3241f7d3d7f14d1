"""``surefoot.http``: call an HTTP API; its status decides between output, retry and dead letter.

The task's idempotency key goes out as the ``Idempotency-Key`` header, which APIs such as
Stripe's use to apply a retried request once. For an API that ignores it, ``dedupe: true``
records the outcome with the control plane instead (see ``dedupe.py``).
"""

from __future__ import annotations

from typing import Any

from surefoot_worker import RetryPolicy

from surefoot_connectors import http_exchange
from surefoot_connectors.call import ConnectorCall, ConnectorFailure
from surefoot_connectors.registry import Connector

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
IDEMPOTENCY_HEADER = "Idempotency-Key"

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "surefoot.http input",
    "type": "object",
    "required": ["url"],
    "additionalProperties": False,
    "properties": {
        "method": {"enum": METHODS, "default": "GET", "description": "HTTP method"},
        "url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "http:// or https:// URL; may hold ${secret:NAME}",
        },
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "request headers; values may hold ${secret:NAME}",
        },
        "query": {
            "type": "object",
            "additionalProperties": {
                "type": ["string", "number", "boolean", "array"],
                "items": {"type": ["string", "number", "boolean"]},
            },
            "description": "query parameters added to the URL",
        },
        "json": {"description": "JSON request body (any JSON value); not with body"},
        "body": {"type": "string", "description": "text request body; not with json"},
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 3600,
            "default": 30,
            "description": "connect, read and write timeout",
        },
        "follow_redirects": {
            "type": "boolean",
            "default": False,
            "description": "follow 3xx answers; else a 3xx is an error",
        },
        "dedupe": {
            "type": "boolean",
            "default": False,
            "description": "record the outcome so that a retry never calls twice, for APIs "
            "that ignore Idempotency-Key",
        },
        "max_response_bytes": {
            "type": "integer",
            "minimum": 1,
            "default": http_exchange.DEFAULT_MAX_RESPONSE_BYTES,
            "description": "longer bodies are cut and marked truncated",
        },
    },
}


def call_http(call: ConnectorCall) -> dict[str, Any]:
    """Send the request; 2xx gives ``{status, headers, body}``, anything else fails.

    Raises:
        ConnectorFailure: ``HttpStatus<code>`` for a non-2xx answer (429 and 5xx retryable,
            with the service's ``Retry-After``), ``Http<Error>`` when no answer came back.
    """
    given = call.input
    if given.get("json") is not None and given.get("body") is not None:
        raise ConnectorFailure(
            "surefoot.http input is invalid: give json or body, not both",
            type="ConnectorInputInvalid",
            retryable=False,
            may_have_acted=False,
        )
    headers = dict(given.get("headers") or {})
    if not any(name.lower() == IDEMPOTENCY_HEADER.lower() for name in headers):
        headers[IDEMPOTENCY_HEADER] = call.idempotency_key
    request = http_exchange.Request(
        method=given.get("method", "GET"),
        url=given["url"],
        headers=headers,
        query=given.get("query"),
        json_body=given.get("json"),
        text_body=given.get("body"),
        timeout=call.timeout(float(given.get("timeout_seconds", 30))),
        follow_redirects=bool(given.get("follow_redirects", False)),
        max_response_bytes=int(
            given.get("max_response_bytes", http_exchange.DEFAULT_MAX_RESPONSE_BYTES)
        ),
        redactor=call.redactor,
    )

    def send() -> dict[str, Any]:
        response = http_exchange.send(request)
        http_exchange.raise_for_status(request, response)
        output: dict[str, Any] = {
            "status": response.status,
            "headers": response.visible_headers(),
            "body": response.body(),
        }
        if response.truncated:
            output["truncated"] = True
        return output

    return call.deduplicated(send) if given.get("dedupe") else send()


CONNECTOR = Connector(
    name="surefoot.http",
    version="1",
    summary="Call an HTTP API: 2xx is the output, 429 and 5xx retry after Retry-After, "
    "other answers dead-letter",
    input_schema=INPUT_SCHEMA,
    # It sends the idempotency key downstream, and with `dedupe` records the outcome.
    idempotency="key",
    retry=RetryPolicy(
        max_attempts=5,
        initial_interval=1.0,
        backoff_coefficient=2.0,
        max_interval=60.0,
        jitter=0.2,
    ),
    handler=call_http,
)
