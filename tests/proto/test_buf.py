"""buf lint (buf.yaml's rules) and buf breaking against the released proto pass, and buf
breaking does catch a break: the checks CI relies on.

The released proto is an image checked in under proto/released/ (a checkout has it whatever
its depth or tags): made at a release by
`buf build '.git#ref=<release>,subdir=proto' -o proto/released/<release>.binpb`.

buf is workers/node's pinned devDependency (@bufbuild/buf); .ci/run installs it with `npm ci`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT

BUF = REPO_ROOT / "workers" / "node" / "node_modules" / ".bin" / "buf"
AGAINST = "proto/released/e291f53.binpb"


def buf(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    if not BUF.exists():
        message = f"{BUF} is missing: run `npm ci` in workers/node"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run(
        [str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_buf_lint_passes() -> None:
    result = buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_breaking_change_against_the_released_proto() -> None:
    result = buf("breaking", "--against", AGAINST)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_reports_a_removed_field(tmp_path: Path) -> None:
    # A copy of the module with one field of a released message gone must fail the check:
    # otherwise the test above would pass for the wrong reason (an empty baseline).
    shutil.copy(REPO_ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(REPO_ROOT / "proto", tmp_path / "proto", ignore=shutil.ignore_patterns("*.py*"))
    common = tmp_path / "proto" / "surefoot" / "v1" / "common.proto"
    text = common.read_text()
    assert "string encoding = 1;" in text
    common.write_text(text.replace("string encoding = 1;", ""))

    result = buf("breaking", str(tmp_path), "--against", str(REPO_ROOT / AGAINST))

    assert result.returncode != 0
    assert "common.proto" in result.stdout and "encoding" in result.stdout


def test_language_options_are_in_every_proto() -> None:
    for proto in sorted((REPO_ROOT / "proto" / "surefoot" / "v1").glob("*.proto")):
        text = proto.read_text()
        for option in ("csharp_namespace", "go_package", "java_package", "java_multiple_files"):
            assert f"option {option} =" in text, f"{proto.name} has no {option}"
