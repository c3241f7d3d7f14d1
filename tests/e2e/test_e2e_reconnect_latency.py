"""A connected worker is back within about a second of a crashed control plane listening again.

The worker is a real `surefoot worker` process and the control plane a real `surefoot server`
that is SIGKILLed and started again on the same port. What is measured is the mechanism, not
a latency: while the control plane is down, something else listens on its port and notes
when each of the worker's connection attempts arrives. No two attempts may be further apart
than about a second (gRPC's default backoff grows to 1.6 s, 2.6 s, ... 120 s; the SDK's old
one to 5 s), so whenever the control plane comes back, the worker's next attempt is at most
about a second away. The worker's log says once that the control plane was lost, not once
per attempt.
"""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import register, start_run, wait_for_status
from tests.support.waits import wait_until_a_worker_connected
from tests.support.workflows import three_steps

# Attempts are watched until they span this long: past the point where gRPC's default
# backoff (1 s, then 1.6 s, then 2.56 s) or the SDK's former one would leave a longer gap.
OUTAGE_SPAN_SECONDS = 4.0
# The longest gap allowed between two attempts: the 1 s cap, with room for a loaded machine.
LONGEST_GAP_SECONDS = 1.5
# What the worker logs about an outage (workers/surefoot_worker/_reconnect.py).
OUTAGE_LINE = re.compile(r"lost the control plane|cannot reach the control plane|ended the stream")

pytestmark = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


class AttemptRecorder:
    """Listens on a dead control plane's port and notes when each connection arrives.

    Each connection is closed at once, before any HTTP/2 is spoken: to the worker's channel
    that is a failed connection attempt, like a refused one, so its backoff goes on as it
    would with nothing listening; unlike a refused connection, it can be seen and timed.
    """

    def __init__(self, port: int) -> None:
        # The killed server's connections may linger in TIME_WAIT; SO_REUSEADDR (which
        # create_server sets) binds anyway, as the restarted server will.
        self._socket = assert_eventually(
            lambda: _listen(port), message=f"port {port} can be listened on again"
        )
        self._socket.settimeout(0.05)
        self.arrivals: list[float] = []
        self.opened = time.monotonic()
        self.closed: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="attempt-recorder")
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.arrivals.append(time.monotonic())
            connection.close()

    def span(self) -> float:
        """Seconds from the first attempt seen to the last one."""
        return self.arrivals[-1] - self.arrivals[0] if self.arrivals else 0.0

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()
        self.closed = time.monotonic()

    def gaps(self) -> list[float]:
        """Seconds between consecutive attempts, and from the last one to the close (a gap
        at least that long: the next attempt came after the close)."""
        assert self.closed is not None
        times = [*self.arrivals, self.closed]
        return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]


def _listen(port: int) -> socket.socket | None:
    try:
        return socket.create_server(("127.0.0.1", port))
    except OSError:
        return None


def test_a_worker_retries_a_dead_control_plane_at_least_every_second_and_reconnects(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    register(control_plane.stub, three_steps("reconnect-latency"))
    process = worker().process
    before = start_run(control_plane.stub, "reconnect-latency", {"trail": ["before"]})
    wait_for_status(control_plane.stub, before, "COMPLETED")
    log_before_outage = len(process.stderr())

    control_plane.kill()
    recorder = AttemptRecorder(control_plane.port)
    try:
        assert_eventually(
            lambda: recorder.span() >= OUTAGE_SPAN_SECONDS,
            timeout=60,
            message=f"the worker's attempts span {OUTAGE_SPAN_SECONDS} s",
        )
    finally:
        recorder.close()
    gaps = recorder.gaps()
    assert max(gaps) <= LONGEST_GAP_SECONDS, (
        f"attempts {len(recorder.arrivals)}, gaps {[round(g, 2) for g in gaps]}"
    )

    control_plane.restart()
    wait_until_a_worker_connected(control_plane, timeout=60)
    after = start_run(control_plane.stub, "reconnect-latency", {"trail": ["after"]})
    wait_for_status(control_plane.stub, after, "COMPLETED")

    # One line for the whole outage, however many attempts it took.
    outage_log = process.stderr()[log_before_outage:]
    assert len(OUTAGE_LINE.findall(outage_log)) == 1, outage_log
    assert "reconnected to" in outage_log, outage_log
