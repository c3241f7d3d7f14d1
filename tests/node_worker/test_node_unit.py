"""The TypeScript SDK's own unit tests (workers/node/test/, `npm test`): declarations are
checked when made, errors and outputs become the right results. Run here so that CI runs them."""

from __future__ import annotations

import subprocess

from tests.node_worker.test_node_worker import require_node_sdk
from tests.support.processes import REPO_ROOT

NODE_TESTS = REPO_ROOT / "workers" / "node" / "dist" / "test"


def test_node_sdk_unit_tests_pass() -> None:
    node = require_node_sdk()
    tests = sorted(str(p) for p in NODE_TESTS.glob("*.test.js"))
    assert tests, f"no compiled tests in {NODE_TESTS}"

    result = subprocess.run(
        [node, "--test", *tests], capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
