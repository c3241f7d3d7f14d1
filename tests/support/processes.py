"""Real Surefoot processes for the end-to-end tests: control planes, workers and the CLI.

Every process writes its stdout and stderr to files under the test's tmp_path, so that a
failing test can show what each of them said, and is killed at teardown whatever happened.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import pytest
from surefoot.v1 import workflow_service_pb2_grpc

from tests.support.eventually import assert_eventually

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS_MODULE = Path(__file__).with_name("steps.py")
EXECUTION_LOG_ENV = "SUREFOOT_E2E_EXECUTION_LOG"

LISTENING = re.compile(r"surefoot control plane listening on (\S+)")
WORKER_CONNECTED = re.compile(r"worker (\S+) connected to (\S+): steps")
# A loaded 2-core CI machine starts a Python process with grpc and SQLAlchemy in seconds.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
LOG_TAIL_CHARS = 6000


def surefoot_command(*args: str) -> list[str]:
    """`surefoot ARGS` as the console script runs it, with this interpreter."""
    return [sys.executable, "-m", "controlplane.cli.main", *args]


def process_environment(**extra: str) -> dict[str, str]:
    """The test's environment without the developer's SUREFOOT_* settings, plus `extra`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SUREFOOT_")}
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(extra)
    return environment


class ProcessExited(Exception):
    """A process ended while a test waited for it to say something.

    Not an AssertionError, so that `assert_eventually` stops waiting at once.
    """


class ManagedProcess:
    """A child process whose output goes to `<log_dir>/<name>.stdout|.stderr`."""

    def __init__(self, name: str, args: Sequence[str], log_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.args = list(args)
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.popen = subprocess.Popen(
                self.args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO_ROOT, env=env
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for_stdout(
        self, pattern: re.Pattern[str], timeout: float = START_TIMEOUT
    ) -> re.Match[str]:
        """The first match of `pattern` in stdout, once the process has printed it.

        Raises:
            ProcessExited: If the process ends without printing it.
        """

        def printed() -> re.Match[str] | None:
            found = pattern.search(self.stdout())
            if found is None and not self.running:
                # Read again: the line may have been written just before the exit.
                found = pattern.search(self.stdout())
                if found is None:
                    raise ProcessExited(
                        f"{self.name} exited with {self.popen.returncode} before printing "
                        f"{pattern.pattern!r}\n{self.logs()}"
                    )
            return found

        try:
            return assert_eventually(
                printed, timeout, message=f"{self.name} prints {pattern.pattern!r}"
            )
        except ProcessExited:
            raise
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def send_signal(self, signum: signal.Signals) -> None:
        if self.running:
            self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would, and reap it."""
        if self.running:
            self.popen.kill()
        self.popen.wait(timeout=STOP_TIMEOUT)

    def stop(self, signum: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Sends `signum` and returns the exit code; SIGKILLs it if it does not exit in time."""
        self.send_signal(signum)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not exit within {timeout:.0f} s of {signum.name}\n{self.logs()}"
            ) from None

    def logs(self) -> str:
        state = "running" if self.running else f"exit code {self.popen.returncode}"
        return (
            f"--- {self.name} (pid {self.pid}, {state}): {' '.join(self.args)}\n"
            f"--- stdout:\n{_tail(self.stdout())}\n--- stderr:\n{_tail(self.stderr())}"
        )


def port_is_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:port now (gRPC sets SO_REUSEADDR too)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(text: str) -> str:
    return text if len(text) <= LOG_TAIL_CHARS else "...\n" + text[-LOG_TAIL_CHARS:]


class ProcessRegistry:
    """Every process a test started, so that none outlives it."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.processes: list[ManagedProcess] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, kind: str, args: Sequence[str]) -> ManagedProcess:
        name = f"{len(self.processes) + 1:02d}-{kind}"
        process = ManagedProcess(name, args, self.log_dir, self.env)
        self.processes.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.processes:
            process.kill()

    def report(self) -> str:
        return "\n".join(process.logs() for process in self.processes)


PROCESSES = pytest.StashKey[ProcessRegistry]()
"""Where a test item keeps its registry, so that a failure report can show their output."""


class ControlPlane:
    """A `surefoot server` subprocess on one database, which a test may kill and restart.

    It runs with `--no-auth` (callers without a credential act with every role) unless a
    subclass sets `credentials_required` and gives credentials of its own.

    Attributes:
        database_url: The database it serves; a restart reuses it.
        lease_seconds: Short, so that a lost lease is noticed within the test's patience.
    """

    credentials_required = False

    def __init__(
        self,
        registry: ProcessRegistry,
        database_url: str,
        lease_seconds: float = 2.0,
        poll_interval: float | None = None,
    ) -> None:
        self.registry = registry
        self.database_url = database_url
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.process: ManagedProcess | None = None
        self.address = ""
        self._channel: grpc.Channel | None = None
        self._stub: workflow_service_pb2_grpc.WorkflowServiceStub | None = None

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    @property
    def stub(self) -> workflow_service_pb2_grpc.WorkflowServiceStub:
        """A sync WorkflowService client of the current process."""
        if self._stub is None:
            self._stub = workflow_service_pb2_grpc.WorkflowServiceStub(self.channel)
        return self._stub

    def server_command(self, port: int) -> list[str]:
        """The `surefoot server` command line; subclasses add their options."""
        command = surefoot_command(
            "server",
            "--database-url",
            self.database_url,
            "--listen",
            f"127.0.0.1:{port}",
            "--lease-seconds",
            str(self.lease_seconds),
        )
        if self.poll_interval is not None:
            command += ["--poll-interval", str(self.poll_interval)]
        return command if self.credentials_required else [*command, "--no-auth"]

    def start(self, port: int = 0) -> None:
        """Starts the server on `port` (0: any free one) and waits until it listens.

        A port that the previous process held may take a moment to be free again; the
        server then exits saying it cannot listen, and is started again.
        """
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if port:
                assert_eventually(lambda: port_is_free(port), message=f"port {port} is free again")
            process = self.registry.start("control-plane", self.server_command(port))
            try:
                found = process.wait_for_stdout(LISTENING, max(1.0, deadline - time.monotonic()))
            except ProcessExited:
                if port and "cannot listen" in process.stderr() and time.monotonic() < deadline:
                    continue
                raise
            break
        self.process = process
        self._close_channel()
        self.address = found.group(1)

    def kill(self) -> None:
        """SIGKILL: no drain, no clean shutdown; the leases it granted stay in the database."""
        assert self.process is not None
        self.process.kill()
        self._close_channel()

    def restart(self, same_port: bool = True) -> None:
        """Starts a new process on the same database, on the same port unless told otherwise."""
        if self.process is not None and self.process.running:
            self.process.kill()
        self.start(self.port if same_port else 0)

    def stop(self) -> int | None:
        """SIGTERM and wait for the clean exit; None if it was not running."""
        self._close_channel()
        if self.process is None or not self.process.running:
            return None
        return self.process.stop(signal.SIGTERM)

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stub = None


class WorkerProcess:
    """A `surefoot worker MODULE` subprocess, once it is connected."""

    def __init__(self, process: ManagedProcess, worker_id: str) -> None:
        self.process = process
        self.worker_id = worker_id

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        self.process.kill()


StartWorker = Callable[..., WorkerProcess]
"""The `worker` fixture: starts a worker process and returns it once connected."""


def start_worker(
    registry: ProcessRegistry, address: str, module: str | Path = STEPS_MODULE
) -> WorkerProcess:
    """Starts a worker for `module`'s steps and waits until the control plane welcomed it."""
    process = registry.start(
        "worker", surefoot_command("worker", str(module), "--address", address)
    )
    found = process.wait_for_stdout(WORKER_CONNECTED)
    return WorkerProcess(process, found.group(1))


def run_cli(*args: str, timeout: float = 60.0, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs a short-lived `surefoot ARGS` to its end, as a user at a shell would."""
    return subprocess.run(
        surefoot_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env=process_environment(**env),
        stdin=subprocess.DEVNULL,
    )
