"""How soon a worker tries its control plane again after losing it, and what it logs meanwhile.

The waits start at 0.1 s and double up to `max_reconnect_delay` (1 s by default), the
channel's own connection backoff is capped to match, a worker that could not connect goes the
moment its channel does, and an outage is one log line, then one every 30 s, however many
attempts it takes. The end-to-end proof (a real worker and a control plane SIGKILLed and
started again) is tests/e2e/test_e2e_reconnect_latency.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import grpc
import pytest
import surefoot_worker
import surefoot_worker.__main__ as command
from surefoot_worker import ChannelSettings, Worker
from surefoot_worker._channel import reconnect_options
from surefoot_worker._reconnect import OutageLog, ReconnectBackoff
from surefoot_worker._worker import _until_reachable
from surefoot_worker.examples import orders

from controlplane.cli.main import main as surefoot
from tests.support.processes import free_port, run_cli

ADDRESS = "127.0.0.1:7233"


# -- the waits -----------------------------------------------------------------------------


def waits(backoff: ReconnectBackoff, count: int) -> list[float]:
    return [round(backoff.next_delay(), 6) for _ in range(count)]


def test_the_waits_start_at_a_tenth_of_a_second_and_double_up_to_one_second() -> None:
    longest = ReconnectBackoff(1.0, uniform=lambda low, high: high)
    assert waits(longest, 7) == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    shortest = ReconnectBackoff(1.0, uniform=lambda low, high: low)
    assert waits(shortest, 6) == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]


def test_a_jittered_wait_never_exceeds_the_cap() -> None:
    backoff = ReconnectBackoff(1.0, uniform=random.Random(12).uniform)
    drawn = waits(backoff, 1000)
    assert max(drawn) <= 1.0
    assert min(drawn[10:]) >= 0.5  # past the start, each wait is within the cap's upper half
    assert len(set(drawn)) > 900  # jittered: a fleet of workers does not retry in lockstep


def test_a_welcomed_stream_starts_the_waits_over() -> None:
    backoff = ReconnectBackoff(5.0, uniform=lambda low, high: high)
    assert waits(backoff, 8)[-1] == 5.0
    backoff.reset()
    assert waits(backoff, 2) == [0.1, 0.2]


def test_a_cap_below_the_first_wait_is_every_wait() -> None:
    backoff = ReconnectBackoff(0.1, uniform=lambda low, high: high)
    assert waits(backoff, 3) == [0.1, 0.1, 0.1]


# -- the channel's own backoff -------------------------------------------------------------


@pytest.mark.parametrize("max_delay", [0.1, 0.5, 1.0, 5.0, 300.0])
def test_the_channel_backoff_with_its_jitter_stays_within_the_workers_delay(
    max_delay: float,
) -> None:
    options = dict(reconnect_options(max_delay))
    assert options["grpc.initial_reconnect_backoff_ms"] == 100
    cap = options["grpc.max_reconnect_backoff_ms"]
    # gRPC draws up to 20% above its cap, and never waits less than 100 ms.
    assert cap * 1.2 <= max(max_delay * 1000, 120)
    assert cap >= max(100, max_delay * 1000 / 1.2 - 1)


def test_every_channel_the_worker_opens_carries_the_capped_backoff() -> None:
    checked = ChannelSettings(max_reconnect_delay=2.4).checked()
    assert ("grpc.max_reconnect_backoff_ms", 2000) in checked._options()
    assert dict(ChannelSettings().checked()._options())["grpc.max_reconnect_backoff_ms"] == 833


# -- refusals ------------------------------------------------------------------------------


BAD_DELAYS = [0, 0.05, -1.0, 300.5, float("nan"), float("inf")]


@pytest.mark.parametrize("delay", BAD_DELAYS)
def test_a_max_reconnect_delay_out_of_range_is_refused(delay: float) -> None:
    with pytest.raises(ValueError, match="max_reconnect_delay must be between 0.1 and 300"):
        ChannelSettings(max_reconnect_delay=delay).checked()
    with pytest.raises(ValueError, match="max_reconnect_delay"):
        Worker(ADDRESS, [orders.charge_card], max_reconnect_delay=delay)


def test_the_bounds_themselves_are_accepted() -> None:
    for delay in (0.1, 300):
        Worker(ADDRESS, [orders.charge_card], max_reconnect_delay=delay)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def run_worker(module: str, address: str, **options: Any) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(command, "run_worker", run_worker)
    return seen


def test_the_command_passes_the_delay_only_when_given(calls: list[dict[str, Any]]) -> None:
    assert command.main(["steps.py", "--max-reconnect-delay", "2.5"]) == 0
    assert command.main(["steps.py"]) == 0
    assert calls[0]["max_reconnect_delay"] == 2.5
    assert "max_reconnect_delay" not in calls[1]  # the SDK's default applies


@pytest.mark.parametrize("value", ["0", "0.05", "301", "nan", "inf", "soon"])
def test_the_command_refuses_a_delay_out_of_range(
    calls: list[dict[str, Any]], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        command.main(["steps.py", "--max-reconnect-delay", value])
    assert exited.value.code == 2
    assert "--max-reconnect-delay: expected seconds from 0.1 to 300" in capsys.readouterr().err
    assert calls == []


def test_surefoot_worker_passes_the_delay_only_when_given(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    def run_worker(module: str, address: str, **options: Any) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(surefoot_worker, "run_worker", run_worker)
    assert surefoot(["worker", "steps.py", "--max-reconnect-delay", "2.5"]) == 0
    assert surefoot(["worker", "steps.py"]) == 0
    assert seen[0]["max_reconnect_delay"] == 2.5
    assert "max_reconnect_delay" not in seen[1]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "--max-reconnect-delay: must be greater than 0"),
        ("soon", "--max-reconnect-delay: 'soon' is not a number"),
        ("0.05", "max_reconnect_delay must be between 0.1 and 300 seconds, got 0.05"),
        ("301", "max_reconnect_delay must be between 0.1 and 300 seconds, got 301.0"),
    ],
)
def test_surefoot_worker_refuses_a_delay_out_of_range_before_loading_anything(
    value: str, message: str
) -> None:
    # The module does not exist: the option is refused before it is looked for.
    result = run_cli("worker", "no_such_module", "--max-reconnect-delay", value)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert "cannot load steps" not in result.stderr


# -- what is logged ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [record.getMessage() for record in caplog.records]
    caplog.clear()
    return lines


REFUSED = "UNAVAILABLE: failed to connect to all addresses"


def test_an_outage_is_one_line_then_one_every_thirty_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test.outage")
    clock = Clock()
    log = OutageLog(logging.getLogger("test.outage"), ADDRESS, 1.0, clock=clock)

    log.stream_ended(welcomed=True, draining=False, problem="UNAVAILABLE: Socket closed", wait=0.1)
    assert outage_lines(caplog) == [
        f"lost the control plane at {ADDRESS} (UNAVAILABLE: Socket closed); reconnecting in 0.1s"
    ]
    # An attempt a second for 29 s: nothing more.
    for _ in range(29):
        clock.now += 1.0
        log.stream_ended(welcomed=False, draining=False, problem=REFUSED, wait=1.0)
    assert outage_lines(caplog) == []
    clock.now += 1.0
    log.stream_ended(welcomed=False, draining=False, problem=REFUSED, wait=1.0)
    assert outage_lines(caplog) == [
        f"still cannot reach the control plane at {ADDRESS} after 30s ({REFUSED})"
    ]
    clock.now += 29.0
    log.stream_ended(welcomed=False, draining=False, problem=REFUSED, wait=1.0)
    assert outage_lines(caplog) == []
    clock.now += 1.0
    log.stream_ended(welcomed=False, draining=False, problem=None, wait=1.0)
    assert outage_lines(caplog) == [
        f"still cannot reach the control plane at {ADDRESS} after 60s "
        "(the stream ended before the control plane welcomed it)"
    ]

    # Welcomed again, then lost again: a new outage, said at once.
    clock.now += 0.5
    log.stream_ended(welcomed=True, draining=False, problem="UNAVAILABLE: Socket closed", wait=0.1)
    assert len(outage_lines(caplog)) == 1


def test_a_worker_that_never_reached_its_control_plane_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test.outage")
    clock = Clock()
    log = OutageLog(logging.getLogger("test.outage"), ADDRESS, 1.0, clock=clock)
    for _ in range(10):
        log.stream_ended(welcomed=False, draining=False, problem=REFUSED, wait=0.5)
        clock.now += 0.5
    assert outage_lines(caplog) == [
        f"cannot reach the control plane at {ADDRESS} ({REFUSED}); retrying at least every 1s"
    ]


def test_a_drain_and_a_closed_stream_begin_an_outage_with_their_own_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test.outage")
    log = OutageLog(logging.getLogger("test.outage"), ADDRESS, 1.0, clock=Clock())
    log.stream_ended(welcomed=True, draining=True, problem=None, wait=0.1)
    log.stream_ended(welcomed=False, draining=False, problem=REFUSED, wait=0.1)
    log.stream_ended(welcomed=True, draining=False, problem=None, wait=0.1)
    assert outage_lines(caplog) == [
        f"reconnecting to {ADDRESS} as the control plane asked",
        f"control plane at {ADDRESS} ended the stream; reconnecting in 0.1s",
    ]


# -- waiting for the channel ---------------------------------------------------------------


async def _wait_for_state(channel: grpc.aio.Channel, state: grpc.ChannelConnectivity) -> None:
    current = channel.get_state(try_to_connect=True)
    while current is not state:
        await channel.wait_for_state_change(current)
        current = channel.get_state(try_to_connect=True)


def test_a_worker_that_could_not_connect_goes_the_moment_its_channel_does() -> None:
    """The wait given is ten minutes; the control plane listening again ends it."""

    async def body() -> None:
        port = free_port()
        channel = ChannelSettings().checked().open(f"127.0.0.1:{port}")
        server = grpc.aio.server()
        try:
            await asyncio.wait_for(
                _wait_for_state(channel, grpc.ChannelConnectivity.TRANSIENT_FAILURE), 60
            )
            server.add_insecure_port(f"127.0.0.1:{port}")
            await server.start()
            await asyncio.wait_for(_until_reachable(channel, 600.0), 60)
            assert channel.get_state() is grpc.ChannelConnectivity.READY
        finally:
            await server.stop(None)
            await channel.close(None)

    asyncio.run(body())


def test_a_control_plane_that_answered_and_ended_the_stream_is_given_the_whole_wait() -> None:
    """Connected, the channel is no reason to go sooner: the control plane itself refused."""

    async def body() -> float:
        server = grpc.aio.server()
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = ChannelSettings().checked().open(f"127.0.0.1:{port}")
        try:
            await asyncio.wait_for(channel.channel_ready(), 60)
            started = time.monotonic()
            await _until_reachable(channel, 0.3)
            return time.monotonic() - started
        finally:
            await channel.close(None)
            await server.stop(None)

    assert asyncio.run(body()) >= 0.3
