"""The processes a bench drives: its own control plane and its worker subprocesses.

Every child's stdout is read by a thread that copies it to a log file in the bench's scratch
directory and stamps each line with the moment it arrived: a restart's gap is measured from
the new control plane's "listening" line, which a log file polled every few tens of
milliseconds would blur.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from controlplane.auth.tokens import new_token, token_hash
from controlplane.cli.channels import Connection
from controlplane.throwaway_certs import OpensslError, make_tls_files

# No-op async steps: a wide credit window keeps the pipeline full while a batch commits.
WORKER_CONCURRENCY = 1000
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
LISTENING = re.compile(r"listening on (\S+)")
CONNECTED = re.compile(r"connected")


class BenchError(Exception):
    """What stops a bench: printed as one line, exit code 1."""


class Security:
    """The server options and the client connection of a bench's TLS and auth modes."""

    def __init__(self, server_args: list[str], tls_ca: str | None, token: str) -> None:
        self.server_args = server_args
        self.tls_ca = tls_ca
        self.token = token

    @classmethod
    def make(cls, scratch: Path, tls: bool, auth: bool) -> Security:
        args: list[str] = []
        tls_ca = None
        if tls:
            try:
                files = make_tls_files(scratch / "tls")
            except OpensslError as exc:
                raise BenchError(f"--tls: {exc}") from exc
            args += ["--tls-cert", str(files.server.cert), "--tls-key", str(files.server.key)]
            tls_ca = str(files.ca.cert)
        token = ""
        if auth:
            token = new_token()
            auth_file = scratch / "auth.yaml"
            # Admin everywhere: the bench registers, starts, reads and works in one credential.
            entry = {"principal": "bench", "namespaces": {"*": ["admin"]}}
            auth_file.write_text(json.dumps({"tokens": {token_hash(token): entry}}))
            args += ["--auth-file", str(auth_file)]
        else:
            args.append("--no-auth")
        return cls(args, tls_ca, token)

    def connection(self, address: str) -> Connection:
        # The server certificate names localhost and 127.0.0.1, which is where it listens.
        return Connection(address=address, token=self.token, tls_ca=self.tls_ca)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux), 0.0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def surefoot_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "controlplane.cli.main", *args]


class LoggedProcess:
    """A child whose stdout lines are copied to `<name>.out` and stamped on arrival."""

    def __init__(
        self, name: str, args: list[str], scratch: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.stderr_path = scratch / f"{name}.err"
        # Appended to: a restarted control plane keeps one log across its lives.
        self._log = (scratch / f"{name}.out").open("ab")
        self._lines: list[tuple[float, str]] = []
        self._ended = False
        self._changed = threading.Condition()
        with self.stderr_path.open("ab") as stderr:
            self.popen = subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=(env or dict(os.environ)) | {"PYTHONUNBUFFERED": "1"},
            )
        self._reader = threading.Thread(target=self._read, name=f"bench-{name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            stamp = time.monotonic()
            self._log.write(raw)
            self._log.flush()
            with self._changed:
                self._lines.append((stamp, raw.decode(errors="replace")))
                self._changed.notify_all()
        self._log.close()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def stderr_tail(self, lines: int = 3) -> list[str]:
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return text.strip().splitlines()[-lines:]

    def wait_for(
        self, pattern: re.Pattern[str], timeout: float = READY_TIMEOUT
    ) -> tuple[re.Match[str], float]:
        """The first stdout line matching `pattern` and when it arrived (time.monotonic).

        Raises:
            BenchError: If the process ends first or nothing matches within `timeout`.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for stamp, line in self._lines[seen:]:
                    found = pattern.search(line)
                    if found:
                        return found, stamp
                seen = len(self._lines)
                if self._ended:
                    code = self.popen.wait(STOP_TIMEOUT)
                    raise BenchError(f"{self.name} exited with {code}: {self.stderr_tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"{self.name} did not become ready within {timeout:.0f} s")
                self._changed.wait(remaining)

    def kill(self) -> None:
        """SIGKILL, as a crash would, and reap it."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within STOP_TIMEOUT."""
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            self.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()


class BenchControlPlane:
    """`surefoot server` on the bench's database, which a restart brings back on its port."""

    def __init__(self, database_url: str, scratch: Path, security: Security) -> None:
        self._database_url = database_url
        self._scratch = scratch
        self._security = security
        self.process: LoggedProcess | None = None
        self.address = ""
        # CPU of the lives a restart ended: /proc forgets a process once it is reaped.
        self._cpu_of_ended_lives = 0.0

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def start(self, port: int = 0) -> float:
        """Starts the server on `port` (0: any free one); when it said it listens.

        A port that a killed server held can take a moment to be free again: the new one then
        exits saying it cannot listen, and is started again until READY_TIMEOUT.
        """
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            process = LoggedProcess(
                "control-plane",
                surefoot_command(
                    "server",
                    "--database-url",
                    self._database_url,
                    "--listen",
                    f"127.0.0.1:{port}",
                    *self._security.server_args,
                ),
                self._scratch,
            )
            try:
                found, stamp = process.wait_for(LISTENING, max(1.0, deadline - time.monotonic()))
            except BenchError:
                cannot_listen = any("cannot listen" in line for line in process.stderr_tail())
                if port and cannot_listen and time.monotonic() < deadline:
                    continue
                process.kill()
                raise
            self.process, self.address = process, found.group(1)
            print(f"control plane at {self.address} (pid {process.pid})", file=sys.stderr)
            return stamp

    def kill(self) -> None:
        assert self.process is not None
        self._cpu_of_ended_lives += cpu_seconds(self.process.pid)
        self.process.kill()

    def cpu_seconds(self) -> float:
        """CPU of every life of the control plane so far."""
        live = cpu_seconds(self.process.pid) if self.process is not None else 0.0
        return self._cpu_of_ended_lives + live


def start_worker(connection: Connection, scratch: Path, index: int) -> LoggedProcess:
    """A `surefoot worker` of the bench's no-op steps, once it says it is connected."""
    process = LoggedProcess(
        f"worker-{index}",
        surefoot_command(
            "worker",
            "controlplane.bench_steps",
            "--address",
            connection.address,
            "--concurrency",
            str(WORKER_CONCURRENCY),
        ),
        scratch,
        # The token and the CA reach the worker as the SDK reads them: from the environment.
        env=dict(os.environ) | connection.environment(),
    )
    try:
        process.wait_for(CONNECTED)
    except BenchError:
        process.kill()
        raise
    print(f"worker {index} connected (pid {process.pid})", file=sys.stderr)
    return process
