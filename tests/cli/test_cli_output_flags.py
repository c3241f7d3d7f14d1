"""Writes whose --output is a payload (the step's output, a review's output) keep it apart
from the print format: --json must not replace the payload with "json"."""

from __future__ import annotations

from controlplane.cli.main import build_parser


def test_deadletters_skip_keeps_its_output_with_json() -> None:
    args = build_parser().parse_args(
        ["deadletters", "skip", "run-1", "b", "--output", '{"charged": true}', "--json"]
    )
    assert args.step_output == '{"charged": true}'
    assert args.json is True
