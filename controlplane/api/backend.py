"""What every WorkflowService RPC works with: the database, the committer, who calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, Engine

from controlplane.api.principal import Authenticator
from controlplane.dispatch.committer import Committer
from controlplane.store.database import reader
from controlplane.store.step_types import StepCatalogCache

T = TypeVar("T")


@dataclass(frozen=True)
class Backend:
    engine: Engine
    committer: Committer
    catalog: StepCatalogCache
    auth: Authenticator = field(default_factory=Authenticator)

    async def read(self, work: Callable[[Connection], T]) -> T:
        """`work` on a read-only connection (no SQLite write lock), off the event loop."""

        def run() -> T:
            with reader(self.engine).connect() as connection:
                return work(connection)

        return await asyncio.to_thread(run)

    async def write(self, work: Callable[[Connection], T]) -> T:
        """`work` in one transaction of its own, off the event loop."""

        def run() -> T:
            with self.engine.begin() as connection:
                return work(connection)

        return await asyncio.to_thread(run)
