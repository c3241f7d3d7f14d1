"""``surefoot.webhook``: post a Slack-compatible notification to an incoming-webhook URL.

Slack (and Mattermost, Discord's Slack-compatible endpoint, Rocket.Chat) incoming webhooks
do not dedupe: a retried POST is a second message in the channel. So every post records its
outcome (see ``dedupe.py``): a retry after a crash does not post again.
"""

from __future__ import annotations

from typing import Any

from surefoot_worker import RetryPolicy

from surefoot_connectors import http_exchange
from surefoot_connectors.call import ConnectorCall
from surefoot_connectors.registry import Connector

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "surefoot.webhook input",
    "type": "object",
    "required": ["url", "text"],
    "additionalProperties": False,
    "properties": {
        "url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "the incoming-webhook URL; usually ${secret:NAME}, since it is "
            "the credential",
        },
        "text": {"type": "string", "minLength": 1, "description": "the message (mrkdwn)"},
        "blocks": {
            "type": "array",
            "items": {"type": "object"},
            "description": "Block Kit blocks; text is then the notification fallback",
        },
        "username": {"type": "string", "description": "the sender name shown"},
        "icon_emoji": {"type": "string", "description": "the sender icon, e.g. :robot_face:"},
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 600,
            "default": 30,
            "description": "connect, read and write timeout",
        },
    },
}

# The fields that make up the posted JSON; the others configure the call.
_MESSAGE_FIELDS = ("text", "blocks", "username", "icon_emoji")


def post_notification(call: ConnectorCall) -> dict[str, Any]:
    """Post the message once; 2xx gives ``{status, body}``.

    Raises:
        ConnectorFailure: ``HttpStatus<code>`` for a non-2xx answer (429 and 5xx retryable
            with ``Retry-After``), ``OutcomeUnknown`` when it may have been posted.
    """
    given = call.input
    message = {field: given[field] for field in _MESSAGE_FIELDS if field in given}
    request = http_exchange.Request(
        method="POST",
        url=given["url"],
        headers={"Content-Type": "application/json"},
        json_body=message,
        timeout=call.timeout(float(given.get("timeout_seconds", 30))),
        redactor=call.redactor,
    )

    def send() -> dict[str, Any]:
        response = http_exchange.send(request)
        http_exchange.raise_for_status(request, response)
        return {"status": response.status, "body": response.body()}

    return dict(call.deduplicated(send))


CONNECTOR = Connector(
    name="surefoot.webhook",
    version="1",
    summary="Post a Slack-compatible JSON notification to a webhook, once",
    input_schema=INPUT_SCHEMA,
    idempotency="key",
    retry=RetryPolicy(
        max_attempts=5,
        initial_interval=2.0,
        backoff_coefficient=2.0,
        max_interval=60.0,
        jitter=0.2,
    ),
    handler=post_notification,
)
