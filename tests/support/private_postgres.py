"""A private PostgreSQL cluster for one test, which the test may stop, kill and restart.

Tests of a database outage must never stop the shared server at 127.0.0.1:5432 (other
tests use it), so they get a cluster of their own: `initdb` into a fresh directory, a
free port, trust authentication on 127.0.0.1 only, no Unix socket. `stop()` takes it away
(`fast`: a clean shutdown that disconnects every client; `immediate`: as abrupt as a
crash), `start()` brings it back on the same port with the same data.

initdb and the server refuse to run as root; as root (a CI container) every command runs
as the `postgres` OS user, in a directory that user owns. The cluster is stopped and its
directory removed whatever happens to the test, at process exit at the latest.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.support.processes import free_port

# What a slow, shared 2-core machine needs to start or stop a small cluster.
PG_CTL_TIMEOUT_SECONDS = 60
SERVICE_USER = "postgres"
DATABASE = "surefoot"


class PostgresNotInstalled(Exception):
    pass


def postgres_bindir() -> Path:
    """The directory of initdb and pg_ctl: PATH first, then the newest Debian-style install.

    Raises:
        PostgresNotInstalled: When neither has them.
    """
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    installs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not installs:
        raise PostgresNotInstalled("no initdb on PATH or under /usr/lib/postgresql/*/bin")
    return Path(installs[-1]).parent


class PrivatePostgres:
    """One cluster in its own directory, on 127.0.0.1:`port`.

    Attributes:
        port: Chosen once; a restart listens on the same port.
        url: The SQLAlchemy URL of its `surefoot` database (created empty).
    """

    def __init__(self) -> None:
        self._bindir = postgres_bindir()
        self._as_service_user = os.geteuid() == 0
        # Not pytest's tmp_path: as root that lies in a 0700 directory the service user
        # cannot enter.
        self.directory = Path(tempfile.mkdtemp(prefix="sf_private_pg_"))
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        if self._as_service_user:
            account = pwd.getpwnam(SERVICE_USER)
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self.port = 0
        self._running = False
        self._closed = False
        atexit.register(self.close)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def conninfo(self) -> str:
        """The libpq URL of the `surefoot` database (for psycopg)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def running(self) -> bool:
        return self._running

    def create(self) -> None:
        """initdb, start on a free port, and create the empty `surefoot` database."""
        self._run(
            [
                "initdb",
                "--pgdata",
                str(self.data),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                # The cluster is thrown away after the test: no fsync at all, for speed. A
                # killed server loses nothing by it, only a crashed machine would.
                "--no-sync",
            ]
        )
        for attempt in range(3):
            self.port = free_port()
            try:
                self.start()
                break
            except subprocess.CalledProcessError:
                # Another process took the port between the probe and the bind.
                if attempt == 2:
                    raise
        with psycopg.connect(self._admin_conninfo(), autocommit=True, connect_timeout=5) as c:
            c.execute(f"CREATE DATABASE {DATABASE}")

    def start(self) -> None:
        """Start the server on `port` and wait until it accepts connections."""
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                "-c unix_socket_directories=''",
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c max_connections=100",
                "-c shared_buffers=16MB",
            ]
        )
        self._run(
            [
                "pg_ctl",
                "start",
                "--wait",
                f"--timeout={PG_CTL_TIMEOUT_SECONDS}",
                "--pgdata",
                str(self.data),
                "--log",
                str(self.log_path),
                "-o",
                options,
            ]
        )
        self._running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (clients disconnected, clean shutdown) or `immediate`
        (no shutdown checkpoint: recovery runs at the next start, as after a crash)."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown shutdown mode {mode!r}")
        if not self._running:
            return
        self._run(
            [
                "pg_ctl",
                "stop",
                "--wait",
                f"--timeout={PG_CTL_TIMEOUT_SECONDS}",
                "--pgdata",
                str(self.data),
                "--mode",
                mode,
            ]
        )
        self._running = False

    def restart(self, mode: str = "fast") -> None:
        """Stop (if running) and start again, on the same port with the same data."""
        self.stop(mode)
        self.start()

    def close(self) -> None:
        """Stop the server at once and remove its directory; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._running or (self.data / "postmaster.pid").exists():
                self._running = True
                self.stop("immediate")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass  # best effort: the directory goes anyway
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            atexit.unregister(self.close)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _admin_conninfo(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: Sequence[str]) -> None:
        command = [str(self._bindir / args[0]), *args[1:]]
        if self._as_service_user:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            timeout=PG_CTL_TIMEOUT_SECONDS + 30,
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode,
                command,
                result.stdout,
                f"{result.stderr}\n--- server log:\n{self.log()[-4000:]}",
            )


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private cluster with an empty `surefoot` database; removed afterwards.

    Skips the test when PostgreSQL's server binaries are not installed (fails under CI).
    """
    try:
        cluster = PrivatePostgres()
    except PostgresNotInstalled as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set: the private-cluster tests must run)")
        pytest.skip(str(exc))
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.close()
