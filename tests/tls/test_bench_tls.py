"""`surefoot bench --tls --auth`: its server serves TLS with a throwaway CA and requires the
one token it generated, which its workers and its client present; a small run completes."""

from __future__ import annotations

import json

from tests.support.processes import run_cli


def test_the_bench_finishes_over_tls_with_a_token(database_url: str) -> None:
    result = run_cli("bench", "--database-url", database_url, "--runs", "50", "--tls", "--auth")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["runs"], figures["steps"], figures["tls"], figures["auth"]) == (
        50,
        150,
        True,
        True,
    )
    assert figures["steps_per_second"] > 0
