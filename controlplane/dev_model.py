"""The model behind `surefoot dev`'s support example: a rule-based ticket classifier that
speaks the OpenAI chat-completions protocol (controlplane/model_server.py), so the tour's AI
node runs with no network and no key.

It reads the ticket from the first user message (the rendered prompt) and answers the JSON the
example's schema asks for, chosen by keywords. Two marker words make it misbehave on purpose,
so the tour shows what the engine does with a bad reply:

- "garbled": the first reply is not JSON; the repair turn (the conversation plus the
  validator's errors) is answered correctly, so the run shows one repair and carries on;
- "gibberish": every reply is invalid, so the repairs run out and the node's fallback, a
  human review, asks a person to classify the ticket.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from controlplane.model_server import ModelRequest, ModelServer, Reply

# The model name the example's connection asks for; any other name is answered the same way.
DEV_MODEL = "surefoot-dev-classifier"
REPAIR_ONCE_MARKER = "garbled"
ALWAYS_INVALID_MARKER = "gibberish"

# First match wins; the words are matched against the lowercased ticket text.
CATEGORY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("billing", ("invoice", "charge", "charged", "refund", "payment", "price", "billing")),
    ("technical", ("error", "crash", "bug", "timeout", "broken", "500", "fails", "slow")),
    ("account", ("password", "login", "log in", "sign in", "account", "email address")),
)
HIGH_URGENCY_WORDS = ("urgent", "asap", "outage", "down", "immediately", "twice")
LOW_URGENCY_WORDS = ("whenever", "no rush", "question", "curious")


def classify(text: str) -> dict[str, Any]:
    """The example schema's object for a ticket: category, urgency and a one-line summary."""
    lowered = text.lower()
    category = next(
        (name for name, words in CATEGORY_WORDS if any(w in lowered for w in words)), "other"
    )
    urgency = "normal"
    if any(word in lowered for word in HIGH_URGENCY_WORDS):
        urgency = "high"
    elif any(word in lowered for word in LOW_URGENCY_WORDS):
        urgency = "low"
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    subject = first_line.removeprefix("Subject:").strip()
    summary = f"{category} ticket: {subject}"[:200]
    return {"category": category, "urgency": urgency, "summary": summary}


def ticket_text(request: ModelRequest) -> str:
    """The first user message: the rendered prompt (later user messages are repair turns)."""
    for message in request.messages:
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def is_repair(request: ModelRequest) -> bool:
    """A repair turn carries the model's earlier reply as an assistant message."""
    return any(message.get("role") == "assistant" for message in request.messages)


def respond(request: ModelRequest) -> Reply:
    text = ticket_text(request)
    lowered = text.lower()
    if ALWAYS_INVALID_MARKER in lowered:
        # Not JSON, whatever the repair turn says: the node's fallback has to take over.
        return Reply.text("I'm sorry, I cannot make sense of this ticket.", tokens=(60, 12))
    if REPAIR_ONCE_MARKER in lowered and not is_repair(request):
        # A reply cut short, as models do: the validator's errors go back in a repair turn.
        return Reply.text('{"category": "technical", "urgency": ', tokens=(60, 8))
    return Reply.json(classify(text), tokens=(60, 24))


def start_dev_model(port: int = 0) -> ModelServer:
    """The dev model on 127.0.0.1 (port 0: one the OS picks)."""
    return ModelServer(respond, host="127.0.0.1", port=port)


# -- in `surefoot dev` ---------------------------------------------------------------------

AI_EXAMPLE = ("support", "1")


async def start_dev_model_for(address: str) -> ModelServer:
    """The dev model, on the port the AI example was registered with by an earlier start.

    A registered version cannot change (its base_url is part of it), so a restart on the same
    data directory listens where the version points; a first start (or a port now taken)
    gets one the OS picks.
    """
    port = await _registered_port(address)
    if port:
        try:
            return start_dev_model(port)
        except OSError:
            pass  # taken by something else: the registration will say the version is kept
    return start_dev_model(0)


async def _registered_port(address: str) -> int | None:
    import grpc
    from surefoot.v1 import workflow_service_pb2 as ws
    from surefoot.v1 import workflow_service_pb2_grpc

    name, version = AI_EXAMPLE
    async with grpc.aio.insecure_channel(address) as channel:
        stub = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
        request = ws.GetDefinitionRequest(namespace="default", name=name, version=version)
        try:
            found = await stub.GetDefinition(request, timeout=10.0)
        except grpc.aio.AioRpcError:
            return None  # not registered yet
    for connection in found.definition.models:
        parsed = urlsplit(connection.base_url)
        if parsed.hostname == "127.0.0.1" and parsed.port:
            return parsed.port
    return None


def ai_tour_lines() -> list[str]:
    """The banner's lines for the AI example."""
    start = "  RUN=$(uv run surefoot runs start support --input "
    return [
        "  # a support ticket classified by a model (the local scripted one), routed by class",
        start + """'{"subject": "Charged twice", "body": "My invoice shows the charge twice."}')""",
        '  uv run surefoot runs show "$RUN"',
        "  # the model's first reply is cut short: a repair turn sends it the validator's errors",
        start + """'{"subject": "App crashes", "body": "garbled: it crashes on start"}')""",
        '  uv run surefoot runs history "$RUN"',
        "  # no valid reply at all: a person classifies the ticket (a human review)",
        start + """'{"subject": "Hello", "body": "gibberish"}')""",
        '  uv run surefoot approvals show "$RUN:classify"',
        "  uv run surefoot console    # p: approvals, a: approve with the output (JSON)",
        "  # its eval set (support.eval.yaml) through the model: a score table, exit 0 if passed",
        "  uv run surefoot eval support@1",
    ]
