"""The model call of an ``ai`` node: render, call, validate, repair, fall back.

``run_ai_task`` is what the ``surefoot.ai`` step runs for each attempt, and what
``surefoot eval`` runs for each case: the same code decides what a reply is worth in both.
It tries the primary model, then each fallback model, each with its own repair turns (the
conversation, the invalid reply and a user message listing the validator's errors), then the
default output if the node has one. A reply is never accepted unvalidated: when every model
fails and there is no default the call fails with ``AiOutputInvalid``; a human review or a
dead letter after that is the engine's business. A call that gets no reply at all (a 429,
a 5xx, a timeout) fails the attempt instead, with the endpoint's Retry-After, and the next
attempt starts again from the first model: fallbacks are for replies that do not validate,
retries for endpoints that do not answer.

Every call is recorded (prompt hash, prompt unless redacted, raw reply, validation outcome,
tokens, latency, cost), in the result and in a failure's details. Secret values (the API key,
header values) are hidden from all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from jsonschema import Draft202012Validator

from surefoot_connectors.ai_model import (
    CallFailed,
    Connection,
    ModelReply,
    Request,
    call_model,
    schema_name,
)
from surefoot_connectors.ai_prompt import Prompt, PromptError, render_prompt
from surefoot_connectors.ai_replies import repair_message, reply_errors, schema_validator
from surefoot_connectors.ai_spans import call_span
from surefoot_connectors.redaction import Redactor
from surefoot_connectors.secrets import MalformedReference, SecretNotFound, Secrets

DEFAULT_MAX_REPAIRS = 2
DEFAULT_TIMEOUT_SECONDS = 60.0


class AiFailure(Exception):
    """The call produced no output.

    Attributes:
        error_type: AiOutputInvalid, AiBudgetExceeded, AiRateLimited, AiTimeout,
            AiServerError, AiRequestRejected, SecretNotFound or ConnectorInputInvalid.
        message: One line for the operator, secrets hidden.
        retryable: Whether another attempt may succeed.
        retry_after: Seconds the endpoint asked to wait (429, 503), or None.
        details: JSON-safe facts: the calls made so far, and for AiOutputInvalid the last
            reply, its errors and the usage.
    """

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.details = details or {}


@dataclass(frozen=True)
class _Budget:
    max_tokens: int
    max_cost: float
    used_tokens: int
    used_cost: float

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> _Budget:
        value = value or {}
        return cls(
            max_tokens=int(value.get("max_tokens") or 0),
            max_cost=float(value.get("max_cost") or 0.0),
            used_tokens=int(value.get("used_tokens") or 0),
            used_cost=float(value.get("used_cost") or 0.0),
        )


@dataclass
class _Calls:
    """The calls of one attempt, and what they used."""

    redactor: Redactor
    redact_prompt: bool
    recorded: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0
    cost: float | None = None

    def record(
        self,
        connection: Connection,
        repair: int,
        prompt: Prompt,
        *,
        reply: ModelReply | None = None,
        failed: CallFailed | None = None,
        errors: list[str] | None = None,
    ) -> dict[str, Any]:
        tokens_in = reply.tokens_in if reply else 0
        tokens_out = reply.tokens_out if reply else 0
        cost = connection.cost(tokens_in, tokens_out) if reply else None
        self.tokens += tokens_in + tokens_out
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost
        status = failed.status if failed else ("invalid" if errors else "ok")
        call = {
            "connection": connection.name,
            "model": connection.model,
            "repair": repair,
            "prompt_sha256": prompt.sha256,
            # A repair turn sends the conversation so far; it starts with this prompt, and
            # the earlier calls' replies and errors are the rest of it.
            "prompt": None
            if self.redact_prompt
            else {"system": prompt.system, "user": prompt.user},
            "raw_reply": reply.content if reply else "",
            "valid": reply is not None and not errors,
            "errors": list(errors or ([failed.message] if failed else [])),
            "status": status,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "latency_ms": reply.latency_ms if reply else (failed.latency_ms if failed else 0),
            "cost": cost,
        }
        call = self.redactor.value(call)
        self.recorded.append(call)
        return call

    def usage(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "cost": self.cost}


def run_ai_task(
    task_input: dict[str, Any],
    secrets: Secrets,
    idempotency_key: str,
    traceparent: str = "",
) -> dict[str, Any]:
    """Make the node's model calls until one reply validates, or fall back, or fail.

    Args:
        task_input: The task input as ``controlplane.engine.nodes.ai.ai_task_input`` builds it.
        secrets: Where ``api_key_secret`` and the headers' ``${secret:NAME}`` are looked up.
        idempotency_key: Sent as ``Idempotency-Key``: as is on the first call, with a suffix
            naming the model and repair turn on the others (each is a different request, and
            an endpoint that dedupes must not answer a repair turn with the first reply).
        traceparent: The attempt's W3C trace context, sent as ``traceparent`` when given.

    Returns:
        ``{"output", "source", "connection", "calls", "usage"}``.

    Raises:
        AiFailure: No output; see its error types.
    """
    redactor = secrets.redactor()
    calls = _Calls(redactor, bool(task_input.get("redact_prompt", False)))
    try:
        prompt = render_prompt(
            str(task_input.get("system_prompt") or ""),
            str(task_input.get("user_prompt") or ""),
            task_input.get("input"),
        )
    except PromptError as exc:
        raise AiFailure(
            "ConnectorInputInvalid",
            redactor.text(f"the prompt cannot be rendered: {exc}"),
            retryable=False,
        ) from None
    schema = task_input.get("output_schema")
    if not isinstance(schema, dict):
        raise AiFailure(
            "ConnectorInputInvalid", "output_schema must be a JSON Schema object", retryable=False
        )
    validator = schema_validator(schema)
    connections = [Connection.from_json(c) for c in task_input.get("models") or []]
    if not connections:
        raise AiFailure("ConnectorInputInvalid", "models is empty", retryable=False)
    budget = _Budget.from_json(task_input.get("budget"))
    max_repairs = int(task_input.get("max_repairs", DEFAULT_MAX_REPAIRS))
    node = str(task_input.get("node") or "output")
    last_reply, last_errors = "", ["no reply"]

    for index, connection in enumerate(connections):
        request = _request(task_input, connection, secrets, redactor, schema, node, traceparent)
        messages = prompt.messages()
        for repair in range(max_repairs + 1):
            _check_budget(budget, calls, connection)
            first = (index, repair) == (0, 0)
            key = idempotency_key if first else f"{idempotency_key}.m{index}r{repair}"
            sent = replace(request, headers={**request.headers, "Idempotency-Key": key})
            try:
                reply, value, errors = _call(node, connection, repair, messages, sent, validator)
            except CallFailed as failed:
                calls.record(connection, repair, prompt, failed=failed)
                raise AiFailure(
                    failed.error_type,
                    redactor.text(f"{connection.name}: {failed.message}"),
                    retryable=failed.retryable,
                    retry_after=failed.retry_after,
                    details={"calls": calls.recorded, "usage": calls.usage()},
                ) from None
            calls.record(connection, repair, prompt, reply=reply, errors=errors)
            if not errors:
                return {
                    "output": redactor.value(value),
                    "source": "model" if index == 0 else "fallback_model",
                    "connection": connection.name,
                    "calls": calls.recorded,
                    "usage": calls.usage(),
                }
            last_reply, last_errors = reply.content, errors
            messages = [
                *messages,
                {"role": "assistant", "content": reply.content},
                {"role": "user", "content": repair_message(errors)},
            ]

    if "default_output" in task_input:
        return {
            "output": task_input["default_output"],
            "source": "default",
            "connection": "",
            "calls": calls.recorded,
            "usage": calls.usage(),
        }
    names = ", ".join(c.name for c in connections)
    raise AiFailure(
        "AiOutputInvalid",
        redactor.text(
            f"no valid reply from {names} after {max_repairs} repair(s) each: {last_errors[0]}"
        ),
        retryable=False,
        details=redactor.value(
            {
                "calls": calls.recorded,
                "last_reply": last_reply,
                "errors": last_errors,
                "usage": calls.usage(),
            }
        ),
    )


def _call(
    node: str,
    connection: Connection,
    repair: int,
    messages: list[dict[str, str]],
    request: Request,
    validator: Draft202012Validator,
) -> tuple[ModelReply, Any, list[str]]:
    """One call and its reply's validation, in its span: (reply, value, errors).

    Raises:
        CallFailed: No reply.
    """
    with call_span(node, connection.name, connection.model, repair) as span:
        given = request.headers.get("traceparent", "")
        if given or span.traceparent(""):
            request = replace(
                request, headers={**request.headers, "traceparent": span.traceparent(given)}
            )
        try:
            reply = call_model(connection, messages, request)
        except CallFailed as failed:
            span.outcome(failed.status, error_type=failed.error_type)
            raise
        value, errors = reply_errors(reply.content, validator)
        span.outcome("invalid" if errors else "ok", reply.tokens_in, reply.tokens_out)
        return reply, value, errors


def _request(
    task_input: Mapping[str, Any],
    connection: Connection,
    secrets: Secrets,
    redactor: Redactor,
    schema: Mapping[str, Any],
    node: str,
    traceparent: str,
) -> Request:
    """The parts of a call that stay the same over a connection's repair turns."""
    api_key = ""
    if connection.api_key_secret:
        found = secrets.values.get(connection.api_key_secret.upper())
        if found is None:
            raise AiFailure(
                "SecretNotFound",
                str(SecretNotFound(connection.api_key_secret)),
                retryable=False,
            )
        api_key = found
    try:
        headers = {str(k): str(v) for k, v in secrets.resolve(dict(connection.headers)).items()}
    except SecretNotFound as exc:
        raise AiFailure("SecretNotFound", str(exc), retryable=False) from None
    except MalformedReference as exc:
        raise AiFailure(
            "ConnectorInputInvalid",
            redactor.text(f"models[{connection.name}].headers: {exc}"),
            retryable=False,
        ) from None
    if traceparent:
        headers["traceparent"] = traceparent
    return Request(
        schema=schema,
        schema_name=schema_name(node),
        max_tokens=int(task_input.get("max_tokens") or 0),
        temperature=float(task_input.get("temperature") or 0.0),
        timeout=float(task_input.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS),
        headers=headers,
        api_key=api_key,
    )


def _check_budget(budget: _Budget, calls: _Calls, connection: Connection) -> None:
    """Refuse a call that would start with the run's budget already spent."""
    used_tokens = budget.used_tokens + calls.tokens
    used_cost = budget.used_cost + (calls.cost or 0.0)
    spent = None
    if budget.max_tokens > 0 and used_tokens >= budget.max_tokens:
        spent = f"the run has used {used_tokens} of its {budget.max_tokens} AI tokens"
    elif budget.max_cost > 0 and used_cost >= budget.max_cost:
        spent = f"the run has spent {used_cost:g} of its AI budget of {budget.max_cost:g}"
    if spent is None:
        return
    details: dict[str, Any] = {"usage": calls.usage()}
    if calls.recorded:
        details["calls"] = calls.recorded
    raise AiFailure(
        "AiBudgetExceeded",
        f"{spent}: {connection.name} is not called",
        retryable=False,
        details=details,
    )
