"""Following a run to its end for the CLI: `runs watch`, `runs start --wait`, `runs result`.

All three read the run's `WatchRun` stream (or, for `result`, one GetRun): no polling. The
exit code says how the run ended, so that a script can branch on it (`OUTCOME_HELP`). A
stream lost half-way (a control plane restarting, a load balancer cutting it) is opened
again from the last seq received, which the stream's contract makes lossless; an
unreachable control plane at the start is exit 3 at once, like any command.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator

import grpc
from surefoot.v1 import common_pb2, run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli import output
from controlplane.cli.client import ControlPlaneClient
from controlplane.cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED

# `runs result` on a run still going: its own code, since 3 already means "cannot reach
# the control plane" for every command and a script must tell the two apart.
EXIT_NOT_ENDED = 4

OUTCOME_HELP = """\
exit codes:
  0    the run COMPLETED
  1    the run ended FAILED, CANCELLED or COMPENSATED (or the request was refused)
  2    bad arguments
  3    the control plane cannot be reached
  130  interrupted (Ctrl-C): only the waiting stops, never the run
"""
RESULT_HELP = OUTCOME_HELP.replace(
    "  130", "  4    the run has not ended yet (NEEDS_ATTENTION included)\n  130"
)

ENDED: dict[int, int] = {
    run_pb2.RUN_STATUS_COMPLETED: EXIT_OK,
    run_pb2.RUN_STATUS_FAILED: EXIT_REFUSED,
    run_pb2.RUN_STATUS_CANCELLED: EXIT_REFUSED,
    run_pb2.RUN_STATUS_COMPENSATED: EXIT_REFUSED,
}
# How long a lost stream is tried again before giving up, and the pause between tries.
RECONNECT_PATIENCE_SECONDS = 60.0
RECONNECT_PAUSES = (0.1, 0.25, 0.5, 1.0)

EVENT_HEADERS = ("seq", "time", "type", "node", "attempt", "principal", "data")
# Column widths of a streamed event line: the events come one by one, so the columns cannot
# be fitted to the widest cell as `runs history` does; wide enough for the usual values.
_TYPE_WIDTH = max(len(name) for name in run_pb2.EventType.DESCRIPTOR.values_by_name)
_EVENT_WIDTHS = (5, 24, _TYPE_WIDTH - len("EVENT_TYPE_"), 12, 7, 16)


class Interrupted(Exception):
    """Ctrl-C while following a run; `seq` is the last event received."""

    def __init__(self, seq: int) -> None:
        super().__init__(seq)
        self.seq = seq


def event_cells(event: run_pb2.HistoryEvent) -> tuple[object, ...]:
    """The cells of an event as `runs history` and `runs watch` print them."""
    return (
        event.seq,
        output.timestamp(event.time, precise=True),
        output.enum_name(run_pb2.EventType, event.type),
        event.node_id,
        event.attempt or "",
        event.principal,
        output.payload_text(event.data),
    )


def event_line(cells: tuple[object, ...]) -> str:
    padded = [str(c).ljust(w) for c, w in zip(cells, _EVENT_WIDTHS, strict=False)]
    return "  ".join([*padded, *(str(c) for c in cells[len(_EVENT_WIDTHS) :])]).rstrip()


def follow(
    client: ControlPlaneClient,
    run_id: str,
    after_seq: int = 0,
    keep_open: bool = False,
    on_message: Callable[[ws.WatchRunResponse], None] = lambda message: None,
) -> int:
    """Reads the run's WatchRun stream until it ends; returns the run's last status.

    Raises:
        CliError: the run is unknown or the call refused; exit 3 if nothing answers.
        Interrupted: on Ctrl-C.
    """
    seq = after_seq
    status: int = run_pb2.RUN_STATUS_UNSPECIFIED
    lost_at: float | None = None
    pauses: Iterator[float] = iter(())
    received = False
    while True:
        request = ws.WatchRunRequest(
            namespace=client.namespace, run_id=run_id, after_seq=seq, keep_open=keep_open
        )
        stream = client.workflows.WatchRun(request, metadata=client.connection.metadata)
        try:
            for message in stream:
                received, lost_at = True, None
                if message.events:
                    seq = message.events[-1].seq
                if message.status != run_pb2.RUN_STATUS_UNSPECIFIED:
                    status = message.status
                on_message(message)
            return status
        except KeyboardInterrupt:
            stream.cancel()
            raise Interrupted(seq) from None
        except grpc.RpcError as exc:
            if not received or stream.code() != grpc.StatusCode.UNAVAILABLE:
                raise client._translate(exc) from exc
            # The stream had worked: the control plane went away or is restarting.
            now = time.monotonic()
            if lost_at is None:
                lost_at, pauses = now, iter(RECONNECT_PAUSES)
                print(f"lost the stream of run {run_id}; reconnecting", file=sys.stderr)
            if now - lost_at > RECONNECT_PATIENCE_SECONDS:
                raise client._translate(exc) from exc
        try:
            time.sleep(next(pauses, RECONNECT_PAUSES[-1]))
        except KeyboardInterrupt:
            raise Interrupted(seq) from None


def print_message_json(message: ws.WatchRunResponse) -> None:
    """One stream message as one line of JSON (JSON Lines), or one YAML document."""
    output.print_stream_item(message)


class EventPrinter:
    """Prints streamed events as `runs history` lines, the header before the first one."""

    def __init__(self) -> None:
        self._header_printed = False

    def __call__(self, message: ws.WatchRunResponse) -> None:
        if message.events and not self._header_printed:
            print(event_line(tuple(h.upper() for h in EVENT_HEADERS)))
            self._header_printed = True
        for event in message.events:
            print(event_line(event_cells(event)))
        sys.stdout.flush()


def fetch_run(client: ControlPlaneClient, run_id: str) -> run_pb2.Run:
    request = ws.GetRunRequest(namespace=client.namespace, run_id=run_id)
    return client.call(client.workflows.GetRun, request).run


def report_result(run: run_pb2.Run, as_json: bool) -> int:
    """Prints how `run` ended: its output (stdout) or why it did not complete (stderr).

    Returns the exit code of its outcome; EXIT_NOT_ENDED if it is still going.
    """
    code = ENDED.get(run.status, EXIT_NOT_ENDED)
    status = output.enum_name(run_pb2.RunStatus, run.status)
    if as_json:
        output.print_json(ws.GetRunResponse(run=run))
    elif code == EXIT_NOT_ENDED:
        print(f"run {run.id} has not ended: it is {status}", file=sys.stderr)
    elif run.status == run_pb2.RUN_STATUS_COMPLETED:
        print(_output_text(run.output))
    else:
        error = run.last_error
        why = f": {error.type}: {error.message}" if error.type or error.message else ""
        print(f"run {run.id} ended {status}{why}", file=sys.stderr)
    return code


def _output_text(payload: common_pb2.Payload) -> str:
    """The whole output, pretty when it is JSON (`| jq` reads either)."""
    if payload.encoding in ("", output.JSON_ENCODING) and payload.data:
        try:
            return json.dumps(json.loads(payload.data), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return output.payload_text(payload, None) or "null"


def interrupted(run_id: str, seq: int) -> int:
    """The one line Ctrl-C prints, and its exit code."""
    resume = f" --after-seq {seq}" if seq else ""
    print(
        f"stopped following run {run_id} (the run goes on; "
        f"surefoot runs watch {run_id}{resume} resumes)",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED
