"""`surefoot runs trace ID`: a run's trace as a waterfall in the terminal, drawn by the
console's renderer from the run's history, and (`--otlp`) a finished run's spans re-exported to
the OTLP endpoint of the standard `OTEL_*` variables, for runs that ended before tracing was on.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from rich.console import Console
from rich.table import Table
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from console import waterfall
from console.trace import Trace
from controlplane import telemetry
from controlplane.cli import output
from controlplane.cli.arguments import whole_number
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.errors import EXIT_USAGE, CliError
from controlplane.tracing.history import spans_of_history
from controlplane.tracing.spans import TraceSpan

DEFAULT_WIDTH = 60


def register(commands: argparse._SubParsersAction) -> None:
    trace = commands.add_parser(
        "trace",
        help="a run's trace as a waterfall; --otlp re-exports a finished run's spans",
        description=(
            "Draw the run's steps on its time axis (attempts, retries' backoff, waits) from its "
            "history. With --otlp, send the spans of a finished run (its root, attempts and "
            "waits, with the ids the control plane gives them live) to the OTLP endpoint of "
            "OTEL_EXPORTER_OTLP_ENDPOINT (protocol: OTEL_EXPORTER_OTLP_PROTOCOL). With --json, "
            "the spans as a document."
        ),
    )
    trace.add_argument("run_id", metavar="RUN_ID")
    trace.add_argument(
        "--width",
        type=whole_number(10),
        default=DEFAULT_WIDTH,
        metavar="CELLS",
        help="width of the timeline (default %(default)s)",
    )
    trace.add_argument(
        "--otlp",
        action="store_true",
        help="re-export the finished run's spans over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    add_client_arguments(trace)
    trace.set_defaults(func=trace_run)


def trace_run(args: argparse.Namespace) -> int:
    if args.otlp and not telemetry.export_configured():
        raise CliError(
            "--otlp needs OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) to send spans to",
            EXIT_USAGE,
        )
    with ControlPlaneClient.from_args(args) as client:
        run = client.call(
            client.workflows.GetRun, ws.GetRunRequest(namespace=args.namespace, run_id=args.run_id)
        ).run
        request = ws.GetRunHistoryRequest(namespace=args.namespace, run_id=args.run_id)
        events = list(client.call(client.workflows.GetRunHistory, request).events)
    trace = Trace()
    trace.extend(events)
    spans = spans_of_history(run, events)
    if args.otlp:
        return _reexport(run, trace, spans)
    if args.json:
        output.print_document({"trace_id": run.trace_id, "spans": [_document(s) for s in spans]})
        return 0
    _draw(run, trace, args.width)
    return 0


def _reexport(run: run_pb2.Run, trace: Trace, spans: list[TraceSpan]) -> int:
    if not trace.ended:
        raise CliError(
            f"run {run.id} has not ended: its spans are exported when it ends (with "
            "OTEL_EXPORTER_OTLP_ENDPOINT set on the control plane)",
            EXIT_USAGE,
        )
    if not telemetry.export_once(spans):
        raise CliError(f"the OTLP endpoint did not take the spans of trace {run.trace_id}")
    print(f"exported {len(spans)} span(s) of run {run.id} (trace {run.trace_id})")
    return 0


def _document(span: TraceSpan) -> dict[str, object]:
    return {"kind": type(span).__name__.removesuffix("Span").lower()} | dataclasses.asdict(span)


def _draw(run: run_pb2.Run, trace: Trace, width: int) -> None:
    console = Console(highlight=False, soft_wrap=True)
    now = time.time()
    workflow = f"{run.workflow_name}@{run.workflow_version}"
    console.print(f"run {run.id}  {workflow}  trace {run.trace_id}")
    if trace.start is None:
        console.print("no events yet")
        return
    end = waterfall.axis_end(trace, now)
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("STEP", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("TIME", justify="right", no_wrap=True)
    table.add_column(waterfall.axis_label(trace, now, width), no_wrap=True, width=width)
    for step in [trace.run, *trace.steps]:
        table.add_row(
            step.node_id,
            step.status,
            waterfall.step_duration(step, now),
            waterfall.bar(step, trace.start, end, width),
        )
    console.print(table)
    console.print(waterfall.legend())
