"""Valid requests of the API's unary RPCs on a seeded server: what `near` mutates.

A request with one or two fields changed from one of these passes most of the server's
checks and meets the last one; a request generated from nothing mostly meets the first.
"""

from __future__ import annotations

from google.protobuf.message import Message
from hypothesis import strategies as st
from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import audit_service_pb2 as aupb
from surefoot.v1 import credential_service_pb2 as cpb
from surefoot.v1 import definition_pb2, run_pb2
from surefoot.v1 import evaluation_service_pb2 as espb
from surefoot.v1 import worker_service_pb2 as wpb
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.fuzz.messages import odd_strings
from tests.fuzz.seed import ERROR_TYPE, EVENT, STEP_TYPE, Seeded
from tests.support.runs import json_payload

# Definitions the fuzz registers are named apart from the seeded ones, which StartRun aims
# at: a registered definition with a timer must never run, or it would write in the middle
# of another request's fingerprint.
REGISTERED_PREFIX = "reg-"
DEFINITION_NAME = "surefoot.v1.WorkflowDefinition.name"


def registered_names() -> st.SearchStrategy[str]:
    odd = odd_strings() | st.text(max_size=20)
    return odd.map(lambda text: REGISTERED_PREFIX + text)


def _task(node_id: str, next_node: str = "") -> dict[str, object]:
    node: dict[str, object] = {
        "id": node_id,
        "task": {
            "step_type": STEP_TYPE,
            "step_version": "1",
            "input": "{order: input.order, amount: input.amount}",
            "idempotency": "key",
            "retry": {"max_attempts": 3, "initial_interval_seconds": 1, "jitter": 0.1},
            "timeout_seconds": 30,
            "compensate_step": STEP_TYPE,
            "compensate_input": "steps.charge.output",
        },
    }
    if next_node:
        node["next"] = next_node
    return node


def every_kind() -> definition_pb2.WorkflowDefinition:
    """One definition with a node of each kind, every optional field set."""
    return definition_from_dict(
        {
            "name": f"{REGISTERED_PREFIX}every-kind",
            "version": "1",
            "description": "a node of each kind",
            "input_schema_json": '{"type": "object", "required": ["order"]}',
            "labels": {"team": "payments"},
            "nodes": [
                _task("charge", "route"),
                {
                    "id": "route",
                    "switch": {
                        "cases": [{"condition": "input.amount > `100`", "next": "review"}],
                        "default_next": "fan",
                    },
                },
                {
                    "id": "review",
                    "next": "fan",
                    "approval": {
                        "title": "Pay {{ input.amount }}?",
                        "approvers": ["alice", "group:managers"],
                        "show": {"amount": "input.amount"},
                        "timeout_seconds": 3600,
                        "on_timeout": "reject",
                        "escalate_to": ["bob"],
                    },
                },
                {
                    "id": "fan",
                    "next": "pause",
                    "parallel": {"branches": ["left", "right"], "join": "all"},
                },
                _task("left"),
                _task("right"),
                {"id": "pause", "next": "wait", "sleep": {"seconds": 5}},
                {
                    "id": "wait",
                    "wait_event": {
                        "event_name": EVENT,
                        "correlation_key": "input.order",
                        "timeout_seconds": 60,
                        "timeout_next": "late",
                    },
                },
                _task("late"),
            ],
        }
    )


def valid_requests(seeded: Seeded) -> dict[str, list[Message]]:
    """For each RPC, requests the seeded server accepts (or would, before a mutation)."""
    approval_runs = seeded.runs.get("fuzz-approval", [])
    dead = seeded.runs.get("fuzz-task", [])
    payload = json_payload({"order": "order-x", "amount": 250})
    keys = seeded.known.get("idempotency_key", [])
    requests: dict[str, list[Message]] = {
        "WorkflowService.RegisterDefinition": [
            ws.RegisterDefinitionRequest(definition=every_kind())
        ],
        "WorkflowService.GetDefinition": [ws.GetDefinitionRequest(name="fuzz-task", version="1")],
        "WorkflowService.ListDefinitions": [ws.ListDefinitionsRequest(name="fuzz-task")],
        "WorkflowService.DeprecateDefinition": [
            ws.DeprecateDefinitionRequest(name="fuzz-event", version="1", reason="fuzz")
        ],
        "WorkflowService.StartRun": [
            ws.StartRunRequest(
                namespace="default",
                workflow_name="fuzz-approval",
                workflow_version="1",
                input=payload,
                request_id="fuzz-start",
            )
        ],
        "WorkflowService.GetRun": [ws.GetRunRequest(run_id=run) for run in dead + approval_runs],
        "WorkflowService.ListRuns": [
            ws.ListRunsRequest(
                workflow_name="fuzz-task",
                workflow_version="1",
                statuses=[run_pb2.RUN_STATUS_RUNNING, run_pb2.RUN_STATUS_NEEDS_ATTENTION],
                page_size=2,
            )
        ],
        "WorkflowService.GetRunHistory": [
            ws.GetRunHistoryRequest(run_id=run, after_seq=1, limit=10) for run in dead
        ],
        "WorkflowService.CancelRun": [
            ws.CancelRunRequest(run_id=run, reason="fuzz", compensate=True)
            for run in approval_runs + dead
        ],
        "WorkflowService.PauseRun": [
            ws.PauseRunRequest(run_id=run, reason="fuzz") for run in approval_runs + dead
        ],
        "WorkflowService.ResumeRun": [
            ws.ResumeRunRequest(run_id=run) for run in approval_runs + dead
        ],
        "WorkflowService.GetRunAt": [ws.GetRunAtRequest(run_id=run, seq=2) for run in dead],
        "WorkflowService.ForkRun": [
            ws.ForkRunRequest(run_id=run, from_node="charge", request_id=f"fuzz-fork-{run}")
            for run in dead
        ],
        "WorkflowService.ListApprovals": [
            apb.ListApprovalsRequest(workflow_name="fuzz-approval", page_size=1)
        ],
        "WorkflowService.GetApproval": [
            apb.GetApprovalRequest(approval_id=a) for a in seeded.known.get("approval_id", [])
        ],
        "WorkflowService.DecideApproval": [
            apb.DecideApprovalRequest(approval_id=a, approve=True, comment="ok")
            for a in seeded.known.get("approval_id", [])
        ],
        "WorkflowService.SendEvent": [
            apb.SendEventRequest(
                event_name=EVENT,
                correlation_key=key,
                payload=json_payload({"paid": True}),
                event_id=f"fuzz-{key}",
            )
            for key in seeded.known.get("correlation_key", [])
        ],
        "WorkflowService.ListDeadLetters": [
            ws.ListDeadLettersRequest(
                filter=ws.DeadLetterFilter(step_type=STEP_TYPE), grouped=True, page_size=5
            )
        ],
        "WorkflowService.RetryStep": [
            ws.RetryStepRequest(run_id=run, node_id="charge", input=payload, comment="fuzz")
            for run in dead
        ],
        "WorkflowService.SkipStep": [
            ws.SkipStepRequest(run_id=run, node_id="charge", output=payload, comment="fuzz")
            for run in dead
        ],
        "WorkflowService.RedriveDeadLetters": [
            ws.RedriveDeadLettersRequest(
                filter=ws.DeadLetterFilter(error_type=ERROR_TYPE), comment="fuzz", limit=1
            )
        ],
        "ConnectorOutcomeService.BeginCall": [
            wpb.BeginCallRequest(idempotency_key=key, connector="surefoot.smtp", attempt=2)
            for key in keys
        ],
        "ConnectorOutcomeService.CompleteCall": [
            wpb.CompleteCallRequest(idempotency_key=key, attempt=2, outcome=payload) for key in keys
        ],
        "ConnectorOutcomeService.ClearCall": [
            wpb.ClearCallRequest(idempotency_key=key, attempt=2) for key in keys
        ],
        "CredentialService.CreateCredential": [
            cpb.CreateCredentialRequest(
                principal="fuzz-made",
                namespaces={"default": cpb.NamespaceRoles(roles=["viewer"])},
                groups=["managers"],
                step_types=[STEP_TYPE],
                description="made by the fuzz",
            )
        ],
        "CredentialService.RevokeCredential": [
            cpb.RevokeCredentialRequest(id=credential) for credential in seeded.known.get("id", [])
        ],
        "AuditService.VerifyRuns": [
            aupb.VerifyRunsRequest(run_ids=dead + approval_runs),
            aupb.VerifyRunsRequest(all=True, page_size=2),
        ],
        **evaluation_requests(),
    }
    return requests


EVAL_SET = (
    "threshold: 0.5\ncases:\n  - {name: one, input: {order: o-1}, assertions: [{subset: {}}]}\n"
)


def evaluation_requests() -> dict[str, list[Message]]:
    """EvaluationService on the seeded workflows (none has an ai node, so a set is refused
    at its last check, and outcomes recorded are of kind "recorded")."""
    recorded = espb.Evaluation(
        workflow_name="fuzz-task",
        workflow_version="1",
        kind="recorded",
        score=0.5,
        threshold=0.9,
        cases=1,
        case_results=[
            espb.EvaluationCase(name="r:n", node_id="n", score=0.5, output_json='{"a": 1}')
        ],
        comment="fuzz",
    )
    return {
        "EvaluationService.PutEvalSet": [
            espb.PutEvalSetRequest(
                workflow_name="fuzz-task", workflow_version="1", eval_set=EVAL_SET
            )
        ],
        "EvaluationService.GetEvalSet": [espb.GetEvalSetRequest(workflow_name="fuzz-task")],
        "EvaluationService.RecordEvaluation": [
            espb.RecordEvaluationRequest(evaluation=recorded, request_id="fuzz-eval")
        ],
        "EvaluationService.ListEvaluations": [
            espb.ListEvaluationsRequest(workflow_name="fuzz-task", page_size=2)
        ],
        "EvaluationService.GetEvaluation": [espb.GetEvaluationRequest(id="fuzz-evaluation")],
    }
