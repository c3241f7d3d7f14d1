"""The real entry point: the installed `surefoot console` in a terminal (tmux), keys sent as a
person types them, the screen read back with capture-pane.

Everything else in this folder drives the app headless; this is the one test that the
command line, the config lookup, the terminal driver and the exit all work together.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import register, start_run, wait_for_status
from tests.support.workflows import three_steps

TMUX = shutil.which("tmux") or "/usr/bin/tmux"
SURELY = 30.0


class Terminal:
    """A detached tmux session of its own (own server socket), 100×30."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.socket = f"surefoot-test-{uuid.uuid4().hex[:8]}"
        exports = [f"{name}={value}" for name, value in env.items()]
        self._tmux(
            "new-session", "-d", "-s", "console", "-x", "100", "-y", "30", "env", *exports, *command
        )

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            [TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {args[0]}: {done.stderr.strip()}")
        return done.stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "console", *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "console")

    def shows(self, text: str) -> str:
        def found() -> str | None:
            shown = self.screen()
            return shown if text in shown else None

        try:
            shown: str = assert_eventually(found, SURELY, message=f"the terminal shows {text!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it shows:\n{self.screen()}") from None
        return shown

    def running(self) -> bool:
        listed = subprocess.run(
            [TMUX, "-L", self.socket, "has-session", "-t", "console"], capture_output=True
        )
        return listed.returncode == 0

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal_env(tmp_path: Path) -> dict[str, str]:
    """No config of the machine's user: the console reads its own defaults."""
    return {"XDG_CONFIG_HOME": str(tmp_path / "config"), "TERM": "xterm-256color"}


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


@pytest.mark.skipif(not Path(TMUX).exists(), reason="tmux is not installed")
def test_the_installed_console_runs_in_a_terminal(
    control_plane: ControlPlane,
    worker: StartWorker,
    terminal_env: dict[str, str],
    terminals: list[Terminal],
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("typed"))
    worker()
    run_id = start_run(stub, "typed", {"trail": [], "b": {"non_retryable": True}})
    wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    surefoot = Path(sys.executable).with_name("surefoot")
    assert surefoot.exists(), f"{surefoot}: the project is not installed in this environment"

    terminal = Terminal(
        [str(surefoot), "console", "--address", control_plane.address, "--readonly"],
        terminal_env,
    )
    terminals.append(terminal)
    terminal.shows("connected")
    assert "READ-ONLY" in terminal.screen()

    terminal.keys(":")
    terminal.shows("run ID")  # the prompt lists where it jumps; typing goes to it now
    terminal.keys("dlq", "Enter")
    shown = terminal.shows("CardDeclined")
    assert "1 of 1 groups" in shown and "typed@1" in shown, shown
    terminal.keys("Enter")
    shown = terminal.shows("1 of 1 dead letters")
    assert run_id in shown, shown
    terminal.keys("?")
    terminal.shows("dead_letter.retry")
    # Escape then q at once reads as alt+q in a terminal: a person pauses, so does the test.
    terminal.keys("Escape")
    assert_eventually(lambda: "REMAP AS" not in terminal.screen(), SURELY, message="closed")
    terminal.keys("q")
    assert_eventually(lambda: not terminal.running(), SURELY, message="q quits the console")
