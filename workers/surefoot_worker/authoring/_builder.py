"""`Workflow`: a definition built in Python, node by node, with one method per node kind.

Each method takes the fields of its kind's message in `definition.proto` as keyword arguments,
in the same shapes a YAML file takes (short enum names, dicts for messages), and goes through
the same conversion, so a builder and a file that say the same thing make the same message.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from surefoot.v1 import common_pb2, definition_pb2

from .._retry import RetryPolicy
from ._ai import AiFallbackSpec, fallback_document
from ._document import DefinitionFileError, canonical_json, normalise, one_line

SwitchCase = tuple[str, str] | Mapping[str, str] | definition_pb2.SwitchNode.Case
"""A switch case: `(condition, next)`, `{"condition": ..., "next": ...}` or the message."""


class Workflow:
    """Builds a workflow definition: `Workflow("orders", "1").task(...).task(...).build()`.

    Nodes run in the order they are added: each node's `next` is the node added after it,
    unless the node was given `next=` itself (`next=""` ends its chain, as the last node of a
    parallel branch must). Every method returns the builder, so calls chain.

    Args:
        name, version, description: The definition's identity and what it is for.
        input_schema: A JSON Schema (as an object) the run input must satisfy.
        start: The first node; the first node added when empty.
        labels: Free-form key/value labels.
        models: Model connections for the ai nodes, as `model()` takes them (dicts of its
            arguments, or ModelConnection messages).
        require_eval: This version becomes the workflow's latest only once an evaluation
            of it passes.
    """

    def __init__(
        self,
        name: str,
        version: str,
        description: str = "",
        input_schema: Any = None,
        *,
        start: str = "",
        labels: Mapping[str, str] | None = None,
        models: Iterable[Mapping[str, Any] | definition_pb2.ModelConnection] = (),
        require_eval: bool = False,
    ) -> None:
        self._definition = definition_pb2.WorkflowDefinition(
            name=name,
            version=version,
            description=description,
            start=start,
            require_eval=require_eval,
        )
        self._definition.labels.update(labels or {})
        if input_schema is not None:
            self._definition.input_schema_json = canonical_json(input_schema)
        # Nodes given `next=` explicitly: the node added after them does not follow them.
        self._linked: set[str] = set()
        for connection in models:
            if isinstance(connection, definition_pb2.ModelConnection):
                connection = json_format.MessageToDict(connection, preserving_proto_field_name=True)
            self.model(**connection)

    def task(
        self,
        node_id: str,
        step_type: str,
        *,
        input: str | None = None,
        idempotency: str | int | None = None,
        retry: Any = None,
        step_version: str | None = None,
        timeout_seconds: float | datetime.timedelta | None = None,
        on_failure: str | int | None = None,
        on_failure_next: str | None = None,
        compensate_step: str | None = None,
        compensate_input: str | None = None,
        compensate_idempotency: str | int | None = None,
        compensate_retry: Any = None,
        next: str | None = None,
        description: str = "",
    ) -> Workflow:
        """Adds a task node: a step type run by a worker.

        Args:
            input: JMESPath over the run context; empty passes the run input.
            idempotency: `key`, `natural`, `none` (or the full enum name); None keeps the
                step type's declaration.
            retry: a surefoot_worker RetryPolicy, a common_pb2.RetryPolicy or a dict.
            timeout_seconds: How long one attempt may run; 0 means only the lease bounds it.
            on_failure: `dead_letter`, `compensate` or `fail`.
            on_failure_next: a fallback node to go to when the step is dead-lettered.
            compensate_step: the step type that undoes this one when the run is unwound.
            compensate_input: JMESPath over the run context plus `self` (this step's
                `input` and `output`); empty passes `self`.
            compensate_idempotency, compensate_retry: as `idempotency` and `retry`, for the
                compensating step.

        Raises:
            ValueError: a duplicate node id or an unknown enum name.
        """
        fields = {
            "step_type": step_type,
            "step_version": step_version,
            "input": input,
            "retry": _retry(retry),
            "idempotency": idempotency,
            "timeout_seconds": timeout_seconds,
            "on_failure": on_failure,
            "on_failure_next": on_failure_next,
            "compensate_step": compensate_step,
            "compensate_input": compensate_input,
            "compensate_idempotency": compensate_idempotency,
            "compensate_retry": _retry(compensate_retry),
        }
        return self._add(node_id, "task", fields, next, description)

    def approval(
        self,
        node_id: str,
        *,
        title: str | None = None,
        approvers: Iterable[str] | None = None,
        show: Mapping[str, str] | None = None,
        timeout_seconds: float | datetime.timedelta | None = None,
        on_timeout: str | None = None,
        escalate_to: Iterable[str] | None = None,
        approved_next: str | None = None,
        rejected_next: str | None = None,
        separation_of_duties: bool | None = None,
        next: str | None = None,
        description: str = "",
    ) -> Workflow:
        """Adds an approval node: the run waits for a decision made through the API.

        Args:
            approvers: principals (`alice`) or groups (`group:finance`); empty: anyone.
            show: what the approver sees: label -> JMESPath over the run context.
            timeout_seconds: 0 waits forever.
            on_timeout: `approve`, `reject` or `escalate` (to `escalate_to`).
            approved_next, rejected_next: where each decision leads (default: `next`, and
                for a rejection the run fails and compensates).
            separation_of_duties: who started the run, or decided an earlier approval of
                it, may not decide this one (refused, and the refusal is history).
        """
        fields = {
            "title": title,
            "approvers": approvers,
            "show": show,
            "timeout_seconds": timeout_seconds,
            "on_timeout": on_timeout,
            "escalate_to": escalate_to,
            "approved_next": approved_next,
            "rejected_next": rejected_next,
            "separation_of_duties": separation_of_duties,
        }
        return self._add(node_id, "approval", fields, next, description)

    def sleep(
        self,
        node_id: str,
        seconds: float | datetime.timedelta | None = None,
        *,
        until: str | None = None,
        next: str | None = None,
        description: str = "",
    ) -> Workflow:
        """Adds a sleep node: the run waits, durably, for `seconds` or `until` a time.

        Args:
            until: JMESPath over the run context giving an RFC 3339 timestamp; wins over
                `seconds` when set.
        """
        fields = {"seconds": seconds, "until": until}
        return self._add(node_id, "sleep", fields, next, description)

    def wait_event(
        self,
        node_id: str,
        event_name: str,
        *,
        correlation_key: str | None = None,
        timeout_seconds: float | datetime.timedelta | None = None,
        timeout_next: str | None = None,
        retention_seconds: float | datetime.timedelta | None = None,
        next: str | None = None,
        description: str = "",
    ) -> Workflow:
        """Adds a wait-event node: the run waits for `SendEvent(event_name, key)`.

        Args:
            correlation_key: JMESPath over the run context; its value is the event's key.
            timeout_seconds: 0 waits forever.
            timeout_next: where a timeout leads; empty: the run fails with a timeout error.
            retention_seconds: how long an event sent before the run waits is kept for it.
        """
        fields = {
            "event_name": event_name,
            "correlation_key": correlation_key,
            "timeout_seconds": timeout_seconds,
            "timeout_next": timeout_next,
            "retention_seconds": retention_seconds,
        }
        return self._add(node_id, "wait_event", fields, next, description)

    def switch(
        self,
        node_id: str,
        cases: Sequence[SwitchCase] = (),
        *,
        default_next: str | None = None,
        next: str | None = None,
        description: str = "",
    ) -> Workflow:
        """Adds a switch node: the first case whose JMESPath condition is truthy picks `next`.

        Args:
            cases: `(condition, next)` pairs (or dicts, or `SwitchNode.Case`), in order.
            default_next: where the run goes when no case matches (default: `next`).
        """
        fields = {"cases": [_case(case) for case in cases], "default_next": default_next}
        return self._add(node_id, "switch", fields, next, description)

    def parallel(
        self,
        node_id: str,
        branches: Iterable[str],
        *,
        join: str | None = None,
        next: str | None = None,
        description: str = "",
    ) -> Workflow:
        """Adds a parallel node: its branches run concurrently, then the run goes to `next`.

        A branch is the chain of nodes from its first node to a node without `next`: add the
        branch nodes with `next=""` on the last of each, and give this node `next=` so that
        the first branch node does not follow it.

        Args:
            branches: the first node of each branch.
            join: `all` (every branch must succeed).
        """
        fields = {"branches": branches, "join": join}
        return self._add(node_id, "parallel", fields, next, description)

    def model(
        self,
        name: str,
        base_url: str,
        model: str,
        *,
        api_key_secret: str | None = None,
        structured_output: str | None = None,
        input_price_per_million: float | None = None,
        output_price_per_million: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Workflow:
        """Adds a model connection that `ai` nodes name: an OpenAI-compatible endpoint.

        Args:
            name: What `ai(model=...)` and model fallbacks call it.
            base_url: The API's base URL (`https://api.openai.com/v1`); no credentials.
            model: The model the endpoint is asked for.
            api_key_secret: The name of the secret holding the key (never the key).
            structured_output: `json_schema` (default), `json_object` or `none`.
            input_price_per_million, output_price_per_million: Prices, so that each call's
                cost is recorded and a run's cost budget applies.
            headers: Extra HTTP headers; values may hold `${secret:NAME}`.

        Raises:
            ValueError: a name already used.
        """
        if any(m.name == name for m in self._definition.models):
            raise ValueError(f"duplicate model {name!r} in {self._definition.name!r}")
        fields = {
            "name": name,
            "base_url": base_url,
            "model": model,
            "api_key_secret": api_key_secret,
            "structured_output": structured_output,
            "input_price_per_million": input_price_per_million,
            "output_price_per_million": output_price_per_million,
            "headers": headers,
        }
        _set_fields(self._definition.models.add(), fields, f"{self._definition.name}.models.{name}")
        return self

    def ai(
        self,
        node_id: str,
        *,
        model: str,
        user_prompt: str,
        output_schema: Any = None,
        output_schema_json: str | None = None,
        system_prompt: str | None = None,
        input: str | None = None,
        fallbacks: Iterable[AiFallbackSpec] = (),
        max_repairs: int | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout_seconds: float | datetime.timedelta | None = None,
        retry: Any = None,
        redact_prompt: bool | None = None,
        max_run_tokens: int | None = None,
        max_run_cost: float | None = None,
        on_failure: str | int | None = None,
        on_failure_next: str | None = None,
        next: str | None = None,
        description: str = "",
    ) -> Workflow:
        """Adds an ai node: a model call whose reply must be JSON matching `output_schema`.

        Args:
            model: The `model()` connection to call.
            user_prompt, system_prompt: Jinja2 templates over the variable `input`.
            output_schema: The JSON Schema of the output, as an object (or its JSON text);
                `output_schema_json` takes the text too.
            input: JMESPath over the run context; its value is the templates' `input`.
            fallbacks: Tried in order once the repairs run out: `{"model": name}`, then at
                most one of `{"default_output": value}`, `{"human_review": {...}}`,
                `{"dead_letter": True}` (or AiFallback messages).
            max_repairs: Repair turns per model (0: the default, 2; at most 10).
            timeout_seconds: How long one call may take (0: 60 s).
            retry: As `task`'s: rate limits, 5xx and timeouts are retried.
            redact_prompt: Keep only the rendered prompt's hash in history.
            max_run_tokens, max_run_cost: The run's AI budget.
            on_failure, on_failure_next: As `task`'s, when the step is dead-lettered.
        """
        path = f"{self._definition.name}.{node_id}.ai"
        if (output_schema is None) == (output_schema_json is None):
            raise ValueError(f"{path}: give output_schema or output_schema_json")
        schema = output_schema_json
        if output_schema is not None:
            text = isinstance(output_schema, str)
            schema = output_schema if text else canonical_json(output_schema)
        fields = {
            "model": model,
            "user_prompt": user_prompt,
            "output_schema_json": schema,
            "system_prompt": system_prompt,
            "input": input,
            "fallbacks": [
                fallback_document(f, f"{path}.fallbacks[{i}]") for i, f in enumerate(fallbacks)
            ],
            "max_repairs": max_repairs,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "timeout_seconds": timeout_seconds,
            "retry": _retry(retry),
            "redact_prompt": redact_prompt,
            "max_run_tokens": max_run_tokens,
            "max_run_cost": max_run_cost,
            "on_failure": on_failure,
            "on_failure_next": on_failure_next,
        }
        return self._add(node_id, "ai", fields, next, description)

    def build(self) -> definition_pb2.WorkflowDefinition:
        """Returns a copy, so the builder can go on being extended."""
        definition = definition_pb2.WorkflowDefinition()
        definition.CopyFrom(self._definition)
        return definition

    def _add(
        self,
        node_id: str,
        kind: str,
        fields: Mapping[str, Any],
        next: str | None,
        description: str,
    ) -> Workflow:
        nodes = self._definition.nodes
        if any(node.id == node_id for node in nodes):
            raise ValueError(f"duplicate node id {node_id!r} in {self._definition.name!r}")
        node = definition_pb2.Node(id=node_id, description=description)
        body = getattr(node, kind)
        body.SetInParent()  # a kind with every field at its default is still that kind
        _set_fields(body, fields, f"{self._definition.name}.{node_id}.{kind}")
        if nodes and nodes[-1].id not in self._linked:
            nodes[-1].next = node_id
        if next is not None:
            node.next = next
            self._linked.add(node_id)
        nodes.append(node)
        return self


def _set_fields(message: Message, fields: Mapping[str, Any], path: str) -> None:
    """Sets the given fields (None: left unset) as a document of that message would."""
    document: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, Message):
            getattr(message, name).CopyFrom(value)
            continue
        if isinstance(value, datetime.timedelta):
            value = value.total_seconds()
        elif isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
            value = list(value)
        document[name] = value
    try:
        descriptor = cast(Descriptor, message.DESCRIPTOR)
        json_format.ParseDict(normalise(descriptor, document, path), message)
    except json_format.ParseError as exc:
        raise DefinitionFileError(f"{path}: {one_line(str(exc))}") from exc


def _case(case: SwitchCase) -> dict[str, Any]:
    if isinstance(case, definition_pb2.SwitchNode.Case):
        return json_format.MessageToDict(case, preserving_proto_field_name=True)
    if isinstance(case, tuple):
        condition, target = case
        return {"condition": condition, "next": target}
    return dict(case)


def _retry(retry: Any) -> common_pb2.RetryPolicy | None:
    """A retry policy from the SDK's RetryPolicy, the message, or a dict; None stays None."""
    if retry is None or isinstance(retry, common_pb2.RetryPolicy):
        return retry
    if isinstance(retry, RetryPolicy):
        return retry.to_proto()
    if not isinstance(retry, Mapping):
        raise TypeError(f"retry must be a RetryPolicy or a dict, not {type(retry).__name__}")
    known = common_pb2.RetryPolicy.DESCRIPTOR.fields_by_name
    fields: dict[str, Any] = {}
    for key, value in retry.items():
        # The SDK may spell intervals as `initial_interval=timedelta(...)`; the proto in seconds.
        name = key if key in known else f"{key}_seconds"
        if isinstance(value, datetime.timedelta):
            value = value.total_seconds()
        fields[name] = list(value) if isinstance(value, tuple | frozenset | set) else value
    return json_format.ParseDict(
        normalise(common_pb2.RetryPolicy.DESCRIPTOR, fields, "retry"), common_pb2.RetryPolicy()
    )
