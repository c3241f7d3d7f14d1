"""The fork links GetRun shows: a run's parent and its forks (store/run_forks.py)."""

from __future__ import annotations

from surefoot.v1 import run_pb2

from controlplane.api import convert
from controlplane.store.run_forks import ForkLink


def add_links(run: run_pb2.Run, links: list[ForkLink]) -> None:
    """The run's parent (if it is a fork) and its forks, oldest first."""
    for link in links:
        if link.child_run_id == run.id:
            run.forked_from.CopyFrom(_link(link.parent_run_id, link))
        else:
            run.forks.append(_link(link.child_run_id, link))


def _link(other: str, link: ForkLink) -> run_pb2.RunLink:
    return run_pb2.RunLink(
        run_id=other,
        node_id=link.node_id,
        principal=link.principal,
        created_at=convert.timestamp(link.created_at),
    )
