"""The SDK is its own package: its wheel alone runs a worker, without the server's dependencies.

Builds the wheel from workers/pyproject.toml, installs it into a fresh virtual environment and
runs `surefoot-worker` from there against a real control plane, as a worker machine would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from surefoot_worker import Workflow

from tests.support.processes import REPO_ROOT, WORKER_CONNECTED, ControlPlane, ProcessRegistry
from tests.support.runs import payload_value, register, start_run, wait_for_status

WORKERS = REPO_ROOT / "workers"
# What the control plane needs and a worker must not: none of it may come with the SDK.
SERVER_ONLY = ("sqlalchemy", "psycopg", "alembic", "textual", "jsonschema", "jmespath")
COMMAND_TIMEOUT = 120.0

STEPS = """
import surefoot_worker
from surefoot_worker import step


@step("sdk-wheel-echo", idempotency="natural")
def echo(ctx, value):
    return {"echo": value, "sdk": surefoot_worker.__file__}
"""


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        if os.environ.get("CI"):
            pytest.fail("uv is not on PATH (CI is set: the SDK package test must run)")
        pytest.skip("uv is not on PATH: cannot build and install the SDK wheel")
    return uv


def _environment() -> dict[str, str]:
    # Nothing of this checkout may leak into the fresh environment's imports.
    hidden = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if k not in hidden and not k.startswith("UV_")}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def _uv_offline_first(uv: str, args: list[str], cwd: Path) -> None:
    """`uv ARGS`, from uv's cache when it holds everything, else from the package index."""
    done = _run([uv, *args, "--offline"], cwd)
    if done.returncode != 0:
        done = _run([uv, *args], cwd)
    assert done.returncode == 0, f"uv {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def sdk_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only the SDK wheel (and its dependencies) installed."""
    uv = _uv()
    tmp_path = tmp_path_factory.mktemp("sdk")
    dist = tmp_path / "dist"
    _uv_offline_first(uv, ["build", "--wheel", str(WORKERS), "-o", str(dist)], tmp_path)
    wheels = list(dist.glob("surefoot_worker-*.whl"))
    assert len(wheels) == 1, f"expected one SDK wheel in {dist}, found {wheels}"
    venv = tmp_path / "venv"
    _uv_offline_first(uv, ["venv", str(venv), "--python", sys.executable], tmp_path)
    python = venv / "bin" / "python"
    _uv_offline_first(uv, ["pip", "install", "--python", str(python), str(wheels[0])], tmp_path)
    return venv


def test_the_sdk_wheel_holds_no_server_dependency(sdk_venv: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, pathlib, surefoot_worker, surefoot.v1.worker_service_pb2\n"
        "import surefoot_worker.__main__, surefoot_worker.examples.onboarding\n"
        "import surefoot_worker.examples.orders\n"
        "examples = pathlib.Path(surefoot_worker.__file__).parent / 'examples'\n"
        # Eval sets (x.eval.yaml) lie beside the definitions they evaluate.
        "for path in sorted(examples.glob('*.yaml')):\n"
        "    if not path.name.endswith('.eval.yaml'):\n"
        "        assert surefoot_worker.load_definitions(str(path)), path\n"
        f"for name in {(*SERVER_ONLY, 'controlplane', 'console')!r}:\n"
        "    print(name, importlib.util.find_spec(name) is not None)\n"
        "print('sdk', surefoot_worker.__file__)\n"
    )
    done = _run([str(sdk_venv / "bin" / "python"), "-c", probe], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert Path(lines.pop("sdk")).is_relative_to(sdk_venv)
    assert lines == dict.fromkeys((*SERVER_ONLY, "controlplane", "console"), "False")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_from_the_sdk_wheel_completes_a_run(
    sdk_venv: Path, control_plane: ControlPlane, processes: ProcessRegistry, tmp_path: Path
) -> None:
    steps = tmp_path / "wheel_steps.py"
    steps.write_text(STEPS)
    stub = control_plane.stub
    definition = (
        Workflow("sdk-wheel", "1")
        .task("echo", "sdk-wheel-echo", input="input", idempotency="natural")
        .build()
    )
    assert register(stub, definition).created

    # `env -u`: the registry's environment is this process's, whose PYTHONPATH may name the
    # checkout; the worker must import the installed SDK only.
    hide = [arg for name in ("PYTHONPATH", "PYTHONHOME") for arg in ("-u", name)]
    worker = processes.start(
        "sdk-worker",
        ["env", *hide, str(sdk_venv / "bin" / "surefoot-worker"), str(steps)]
        + ["--address", control_plane.address],
    )
    worker.wait_for_stdout(WORKER_CONNECTED)
    run_id = start_run(stub, "sdk-wheel", {"n": 1})

    run = wait_for_status(stub, run_id, "COMPLETED")
    output = payload_value(run.output)
    assert output["echo"] == {"n": 1}
    # The step ran on the installed SDK, not on this checkout's.
    assert Path(output["sdk"]).is_relative_to(sdk_venv)
