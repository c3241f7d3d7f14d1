"""Evaluation of a version's AiNodes before it takes traffic: eval sets, scoring, runners."""

from controlplane.evaluation.eval_set import (
    MAX_EVAL_SET_BYTES,
    Assertion,
    Case,
    EvalSet,
    EvalSetInvalid,
    ai_nodes,
    parse_eval_set,
    text_hash,
)
from controlplane.evaluation.scoring import CaseResult, Summary, summarize

__all__ = [
    "MAX_EVAL_SET_BYTES",
    "Assertion",
    "Case",
    "CaseResult",
    "EvalSet",
    "EvalSetInvalid",
    "Summary",
    "ai_nodes",
    "parse_eval_set",
    "summarize",
    "text_hash",
]
