"""A worker given several control planes (repeated --address, comma-separated, or a DNS
name resolving to several) fails over when the one it is connected to dies."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text
from surefoot_worker._channel import channel_target, split_addresses

from tests.support.eventually import assert_eventually
from tests.support.processes import (
    STEPS_MODULE,
    WORKER_CONNECTED,
    ControlPlane,
    ProcessRegistry,
    surefoot_command,
)
from tests.support.runs import register, start_run, wait_for_status
from tests.support.workflows import three_steps


def holders(database_url: str) -> list[str]:
    """The control planes ("host:pid") holding worker streams now."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT control_plane FROM worker_sessions"))
            return [row[0] for row in rows]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_worker_given_both_planes_fails_over_when_its_plane_dies(
    planes: list[ControlPlane], processes: ProcessRegistry
) -> None:
    first, second = planes
    register(first.stub, three_steps("failover"))
    worker = processes.start(
        "worker",
        surefoot_command(
            "worker",
            str(STEPS_MODULE),
            "--address",
            first.address,
            "--address",
            second.address,
        ),
    )
    worker.wait_for_stdout(WORKER_CONNECTED)
    run_id = start_run(first.stub, "failover", {"trail": []})
    wait_for_status(first.stub, run_id, "COMPLETED")

    # The plane holding the worker's stream dies; the other one serves the next runs, and
    # the same worker process (not restarted) runs their steps.
    [holder] = assert_eventually(lambda: holders(first.database_url) or None, 30.0)
    by_pid = {p.process.pid: p for p in planes if p.process is not None}
    dead = by_pid[int(holder.rpartition(":")[2])]
    alive = second if dead is first else first
    dead.kill()
    run_id = start_run(alive.stub, "failover", {"trail": []})
    wait_for_status(alive.stub, run_id, "COMPLETED", timeout=90.0)
    assert worker.running


def test_addresses_repeated_or_comma_separated_make_one_target_of_every_address() -> None:
    assert split_addresses(["a:1,b:2", " c:3 ", "a:1"]) == ["a:1", "b:2", "c:3"]
    for wrong in ("a", "a:", ":1", "a:70000", ","):
        with pytest.raises(ValueError):
            split_addresses(wrong)
    # One address goes to gRPC as it is: its resolver tries each address of a DNS name.
    assert channel_target("surefoot.internal:7233") == ("surefoot.internal:7233", None)
    assert channel_target("dns:///surefoot.internal:7233")[0] == "dns:///surefoot.internal:7233"
    # Several are resolved here into one target; a name stays the authority.
    target, authority = channel_target("localhost:7001,127.0.0.2:7002")
    assert authority == "localhost"
    scheme, _, listed = target.partition(":")
    assert scheme == "ipv4"
    assert sorted(listed.split(",")) == ["127.0.0.1:7001", "127.0.0.2:7002"]
    with pytest.raises(ValueError, match="cannot resolve"):
        channel_target(f"a:1,no-such-host-{os.getpid()}.invalid:2")
