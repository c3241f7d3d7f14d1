"""The checked-in Python code under proto/surefoot/v1/ is what proto/generate.py makes now.

Other languages generate their clients from the .proto files, Python imports the checked-in
modules: if the two drift apart, a Python client and a Go client speak different protocols.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
CHECKED_IN = PROTO_ROOT / "surefoot" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
HOW_TO_FIX = "run `uv run python proto/generate.py` and commit the result"


def generated_files(directory: Path) -> dict[str, bytes]:
    return {
        path.name: path.read_bytes()
        for path in sorted(directory.iterdir())
        if path.name.endswith(GENERATED_SUFFIXES)
    }


def test_checked_in_generated_code_matches_the_proto_files(tmp_path: Path) -> None:
    # The mypy plugins are executables next to this interpreter; protoc finds them on PATH.
    environment = dict(os.environ)
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment["PATH"]])
    subprocess.run(
        [sys.executable, str(PROTO_ROOT / "generate.py"), str(tmp_path)],
        check=True,
        capture_output=True,
        env=environment,
        timeout=120,
    )

    fresh = generated_files(tmp_path / "surefoot" / "v1")
    checked_in = generated_files(CHECKED_IN)

    protos = sorted(path.stem for path in CHECKED_IN.glob("*.proto"))
    assert protos, f"no .proto files found in {CHECKED_IN}"
    assert len(fresh) == len(protos) * len(GENERATED_SUFFIXES), "generate.py produced too little"
    missing = sorted(fresh.keys() - checked_in.keys())
    extra = sorted(checked_in.keys() - fresh.keys())
    stale = sorted(
        name for name in fresh.keys() & checked_in.keys() if fresh[name] != checked_in[name]
    )
    assert not missing, f"generated files missing from proto/surefoot/v1: {missing}; {HOW_TO_FIX}"
    assert not extra, (
        f"checked-in generated files without a .proto: {extra}; delete them and {HOW_TO_FIX}"
    )
    assert not stale, f"stale generated files in proto/surefoot/v1: {stale}; {HOW_TO_FIX}"
