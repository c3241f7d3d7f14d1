"""What the test steps really did, read from the execution log their workers append to."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Execution:
    """One line of the log: an attempt started, returned or raised in some worker process."""

    phase: str
    run_id: str
    node_id: str
    attempt: int
    idempotency_key: str
    step_type: str
    input: Any
    pid: int
    time: float
    output: Any = None
    error: str = ""


class ExecutionLog:
    """The JSON-lines file named by SUREFOOT_E2E_EXECUTION_LOG in the workers' environment."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[Execution]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        # A line being written while we read has no newline yet; it shows up next time.
        return [Execution(**json.loads(line)) for line in lines if line.endswith("}")]

    def started(self, run_id: str | None = None, node_id: str | None = None) -> list[Execution]:
        """Executions that began, in the order they began, optionally of one run and node."""
        return [
            e
            for e in self.entries()
            if e.phase == "started"
            and (run_id is None or e.run_id == run_id)
            and (node_id is None or e.node_id == node_id)
        ]

    def starts_per_step(self) -> Counter[tuple[str, str]]:
        """How many times each (run id, node id) began executing, across all workers."""
        return Counter((e.run_id, e.node_id) for e in self.started())
