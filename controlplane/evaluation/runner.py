"""Running cases through a version's AiNodes, outside any run.

Each case becomes the task input the engine would build for the node
(`ai_task_input`) and goes through the connector's call (`run_ai_task`) right here, in the
process of `surefoot eval`: the same prompt rendering, structured output, repairs and model
fallbacks as in a run, without a workflow, a worker or a history. The engine's human review
and dead letter do not apply: a case whose replies never validate simply fails.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from surefoot.v1 import definition_pb2
from surefoot_connectors.secrets import Secrets

from controlplane.evaluation.eval_set import Assertion, Case
from controlplane.evaluation.scoring import CaseResult, score_case

# (task input, idempotency key) -> the connector's result; raises the connector's AiFailure.
ModelCall = Callable[[dict[str, Any], str], dict[str, Any]]

# A rate-limited or failing endpoint is asked again a few times, as a run's retry policy
# would, but never for long: an evaluation is something a person or a CI job waits for.
ATTEMPTS = 3
MAX_WAIT_SECONDS = 10.0

JUDGE_NODE = "__judge__"
JUDGE_SYSTEM = (
    "You grade the output of another model. Reply with a JSON object "
    '{"pass": true|false, "reason": "<one sentence>"} and nothing else.'
)
JUDGE_SCHEMA = (
    '{"type": "object", "required": ["pass", "reason"], "additionalProperties": false,'
    ' "properties": {"pass": {"type": "boolean"}, "reason": {"type": "string"}}}'
)


def task_input_of(
    definition: definition_pb2.WorkflowDefinition, node_id: str, value: Any
) -> dict[str, Any]:
    """The node's task input for `value`, as the engine builds it (no run: nothing used)."""
    from controlplane.engine.nodes.ai import ai_task_input

    return ai_task_input(definition, node_id, value)


def connector_call(secrets: Secrets) -> ModelCall:
    """The connector's own call, with `secrets` for the connections' API keys."""
    from surefoot_connectors.ai_call import run_ai_task

    return lambda task_input, key: run_ai_task(task_input, secrets, key)


class NodeRunner:
    """Runs cases through the AiNodes of one definition version."""

    def __init__(
        self,
        definition: definition_pb2.WorkflowDefinition,
        call: ModelCall,
        secrets: Secrets | None = None,
    ) -> None:
        self.definition = definition
        self._call = call
        self._redactor = (secrets or Secrets({})).redactor()
        # Every idempotency key of this evaluation starts with it: an endpoint that dedupes
        # on the key never answers one case with another evaluation's reply.
        self._prefix = f"eval:{uuid.uuid4()}"
        self.has_node = {n.id for n in definition.nodes if n.WhichOneof("kind") == "ai"}

    def run_case(self, case: Case) -> CaseResult:
        """The case's node output, scored against its assertions."""
        if case.node not in self.has_node:
            label = f"{self.definition.name}@{self.definition.version}"
            return CaseResult(
                case.name, case.node, False, 0.0, failures=[f"{label} has no ai node {case.node!r}"]
            )
        result, failure = self.call_node(case.node, case.input, case.name)
        judged = CallUsage()
        judge = self._judge_for(case, judged)
        if failure is not None or result is None:
            scored = score_case(
                case.name, case.node, case.assertions, None, False, judge, [str(failure)]
            )
        else:
            scored = score_case(
                case.name, case.node, case.assertions, result["output"], True, judge
            )
        # The case's calls: the node's, and its judges'.
        scored.tokens = CallUsage.of(result).tokens + judged.tokens
        scored.latency_ms = CallUsage.of(result).latency_ms + judged.latency_ms
        return scored

    def call_node(
        self, node_id: str, value: Any, label: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        """(the connector's result, None) or (what is known of it, one line saying why not)."""
        return self._call_with_retries(
            task_input_of(self.definition, node_id, value), f"{label}:{node_id}"
        )

    def _call_with_retries(
        self, task_input: dict[str, Any], label: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        from surefoot_connectors.ai_call import AiFailure

        key = f"{self._prefix}:{label}"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return self._call(task_input, key), None
            except AiFailure as failure:
                details = failure.details or {}
                if failure.retryable and attempt < ATTEMPTS:
                    time.sleep(min(failure.retry_after or float(2**attempt), MAX_WAIT_SECONDS))
                    continue
                errors = details.get("errors") or []
                why = f"{failure.error_type}: {failure.message}"
                if errors:
                    why += " (" + "; ".join(str(e) for e in errors[:3]) + ")"
                known = {"usage": details.get("usage") or {}, "calls": details.get("calls") or []}
                return known, self._redactor.text(" ".join(why.split()))
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    def _judge_for(self, case: Case, spent: CallUsage) -> Callable[[Assertion, Any], str | None]:
        def judge(assertion: Assertion, output: Any) -> str | None:
            spent.judges += 1
            model = assertion.spec.get("model") or self._primary_model(case.node)
            definition = judge_definition(self.definition, model, assertion.spec["prompt"])
            task_input = task_input_of(
                definition, JUDGE_NODE, {"input": case.input, "output": output}
            )
            # One key per judge call: two judges of a case are two calls.
            label = f"{case.name}:judge:{spent.judges}"
            result, failure = self._call_with_retries(task_input, label)
            spent.add(result)
            if failure is not None or result is None:
                return f"judge: no verdict: {failure}"
            verdict = result["output"]
            if verdict.get("pass") is True:
                return None
            return f"judge: {' '.join(str(verdict.get('reason', '')).split())[:200]}"

        return judge

    def _primary_model(self, node_id: str) -> str:
        for node in self.definition.nodes:
            if node.id == node_id:
                return node.ai.model
        return ""


@dataclass
class CallUsage:
    """Tokens and time of calls, as the connector's results report them."""

    tokens: int = 0
    latency_ms: float = 0.0
    judges: int = 0

    def add(self, result: dict[str, Any] | None) -> None:
        found = CallUsage.of(result)
        self.tokens += found.tokens
        self.latency_ms += found.latency_ms

    @staticmethod
    def of(result: dict[str, Any] | None) -> CallUsage:
        usage = (result or {}).get("usage") or {}
        calls = (result or {}).get("calls") or []
        latency = sum(float(c.get("latency_ms") or 0) for c in calls)
        return CallUsage(int(usage.get("tokens") or 0), latency)


def judge_definition(
    definition: definition_pb2.WorkflowDefinition, model: str, prompt: str
) -> definition_pb2.WorkflowDefinition:
    """A copy of `definition` with one more AiNode, the judge: its task input is built by
    the engine's own function, so a judge call is a call like any other."""
    copy = definition_pb2.WorkflowDefinition()
    copy.CopyFrom(definition)
    copy.nodes.append(
        definition_pb2.Node(
            id=JUDGE_NODE,
            ai=definition_pb2.AiNode(
                system_prompt=JUDGE_SYSTEM,
                user_prompt=prompt,
                model=model,
                output_schema_json=JUDGE_SCHEMA,
            ),
        )
    )
    return copy
