"""A version's evaluations as the definitions screen shows them: one line each, newest first,
with the score against the threshold, the cases and regressions, who recorded it and when."""

from __future__ import annotations

from collections.abc import Sequence

from surefoot.v1 import evaluation_service_pb2 as epb

NO_EVALUATIONS = "no evaluations"


def evaluation_line(evaluation: epb.Evaluation) -> str:
    """`PASSED 0.92 ≥ 0.80 · 12/13 cases · 1 regression vs 1 · set · ci@… 2026-…`."""
    verdict = "PASSED" if evaluation.passed else "FAILED"
    relation = "≥" if evaluation.score >= evaluation.threshold else "<"
    parts = [
        f"{verdict} {evaluation.score:.2f} {relation} {evaluation.threshold:.2f}",
        f"{evaluation.passed_cases}/{evaluation.cases} cases",
    ]
    if evaluation.against_version:
        regressions = evaluation.regressions
        parts.append(
            f"{regressions} regression{'s' * (regressions != 1)} vs {evaluation.against_version}"
        )
    parts.append(evaluation.kind or "set")
    recorded = evaluation.recorded_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%SZ")
    parts.append(f"by {evaluation.recorded_by or '?'} at {recorded}")
    if evaluation.comment:
        parts.append(evaluation.comment)
    return " · ".join(parts)


def evaluations_text(ref: str, evaluations: Sequence[epb.Evaluation], note: str = "") -> str:
    """The modal's text: a header, then one line per evaluation (or why there is none)."""
    if not evaluations:
        return f"{ref}: {NO_EVALUATIONS}" + (f" ({note})" if note else "")
    passed = sum(1 for e in evaluations if e.passed)
    lines = [f"{ref}: {len(evaluations)} evaluation(s), {passed} passed, newest first", ""]
    lines += [f"{e.id}  {evaluation_line(e)}" for e in evaluations]
    return "\n".join(lines)
