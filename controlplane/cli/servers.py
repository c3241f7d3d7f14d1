"""Commands that run Surefoot processes: server, db upgrade, worker, dev and bench.

Each imports its implementation inside the command function: those modules pull in the
database layer or the worker runtime, which the client commands should neither load nor
depend on.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from controlplane import logs
from controlplane.cli import output
from controlplane.cli.arguments import whole_number
from controlplane.cli.channels import add_connection_arguments, connection_from_args
from controlplane.cli.client import add_address_arguments, addresses_of
from controlplane.cli.errors import usage_error

# How the bench's closed loop follows its runs (controlplane/bench/closed_loop.py).
FOLLOW_MODES = ("wait", "watch")

DEFAULT_LISTEN = "127.0.0.1:7233"


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    server = subparsers.add_parser(
        "server",
        help="run the control plane",
        description="Serve the gRPC API on a database until SIGINT or SIGTERM. Several "
        "servers may share one PostgreSQL database.",
    )
    _add_database_url(server)
    server.add_argument(
        "--log-format",
        type=logs.log_format,
        default=logs.format_from_environment(),
        metavar="{text,json}",
        help="text (default) or json: one JSON object per line with time, level, logger, "
        "message and the run it concerns; secrets masked (env SUREFOOT_LOG_FORMAT)",
    )
    server.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="gRPC listen address (default %(default)s)",
    )
    server.add_argument(
        "--lease-seconds",
        type=_positive_float,
        default=30.0,
        metavar="F",
        help="task lease: an attempt not heartbeated within it goes to another "
        "worker (default %(default)s)",
    )
    server.add_argument(
        "--poll-interval",
        type=_positive_float,
        default=1.0,
        metavar="F",
        help="seconds between looks for ready tasks when nothing announced any: a safety "
        "net only, since a task is handed out when it is scheduled, when credit frees up, "
        "when its retry comes due and when another control plane notifies "
        "(default %(default)s)",
    )
    server.add_argument(
        "--auth-file",
        default=os.environ.get("SUREFOOT_AUTH_FILE") or None,
        metavar="FILE",
        help="YAML of credentials: `tokens: {sha256:HEX: {principal: alice, groups: "
        "[managers], namespaces: {default: [operator, approver]}}}` (the hash is what "
        "`surefoot credentials hash` prints) and `certificates: {CN: {...}}` for mTLS; "
        "credentials made with `surefoot credentials create` count too "
        "(env SUREFOOT_AUTH_FILE)",
    )
    server.add_argument(
        "--no-auth",
        action="store_true",
        help="serve callers without a credential as anonymous, with every role in every "
        "namespace (a credential that is sent is still checked); only for a trusted network",
    )
    _add_server_tls_arguments(server)
    _add_worker_limit_arguments(server)
    server.add_argument(
        "--health-listen",
        default=os.environ.get("SUREFOOT_HEALTH_LISTEN") or None,
        metavar="HOST:PORT",
        help="also serve grpc.health.v1 alone, in plaintext and without credentials, there: "
        "for probes that cannot speak TLS, like Kubernetes' grpc probes "
        "(env SUREFOOT_HEALTH_LISTEN)",
    )
    server.add_argument(
        "--metrics-listen",
        default=os.environ.get("SUREFOOT_METRICS_LISTEN") or None,
        metavar="HOST:PORT",
        help="serve metrics for Prometheus to scrape at http://HOST:PORT/metrics (port 0: "
        "any free port, printed); OTLP export follows OTEL_EXPORTER_OTLP_ENDPOINT and "
        "OTEL_EXPORTER_OTLP_PROTOCOL (env SUREFOOT_METRICS_LISTEN)",
    )
    server.add_argument(
        "--metrics-interval",
        type=_positive_float,
        default=15.0,
        metavar="F",
        help="seconds between two reads of the database for the gauges: queue depth, "
        "runs, waits, dead letters, workers (default %(default)s)",
    )
    server.set_defaults(func=run_server)

    db = subparsers.add_parser("db", help="database administration")
    db.set_defaults(func=lambda args: output.print_group_help(db))
    db_commands = db.add_subparsers(title="commands", metavar="COMMAND")
    upgrade = db_commands.add_parser("upgrade", help="apply the schema migrations")
    _add_database_url(upgrade)
    upgrade.set_defaults(func=upgrade_database)

    worker = subparsers.add_parser(
        "worker",
        help="run a worker for the steps of a Python module",
        description="Connect to the control plane and run the steps MODULE defines.",
    )
    worker.add_argument("module", metavar="MODULE", help="dotted module name or .py path")
    add_address_arguments(worker, several=True)
    worker.add_argument(
        "--concurrency",
        type=whole_number(),
        metavar="N",
        help="tasks run at once (default: the SDK's)",
    )
    worker.add_argument(
        "--max-reconnect-delay",
        # Its bounds are the SDK's, checked there (exit 2): the CLI does not import the SDK
        # before a worker is actually run.
        type=_positive_float,
        metavar="SECONDS",
        help="longest wait between two attempts to reach a lost control plane: the waits "
        "start at 0.1 s and double up to it, so one that is back is reached within about "
        "that long (default 1; 0.1 to 300)",
    )
    add_connection_arguments(worker)
    worker.set_defaults(func=run_worker)

    dev = subparsers.add_parser(
        "dev",
        help="a local control plane on SQLite with the example workflows and worker",
        description="Run a control plane on a SQLite file, register the example workflows "
        "(`onboarding`, a saga with a manager approval; `trial`, with an event wait, a "
        "switch, a parallel and a sleep; `orders`) and run their worker in-process, with "
        "the built-in connectors (`surefoot connectors list`). "
        "Callers without a token act as the OS user, who may decide approvals. "
        "Restarting on the same data directory resumes the runs that were in flight.",
    )
    dev.add_argument(
        "--data-dir",
        default=".surefoot",
        metavar="DIR",
        help="where the SQLite file lives (default %(default)s)",
    )
    dev.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="gRPC listen address (default %(default)s)",
    )
    dev.set_defaults(func=run_dev)

    bench = subparsers.add_parser(
        "bench",
        help="measure throughput and latency against a database",
        description="Start a control plane on the database and worker processes, run a "
        "3-step no-op workflow, print figures on stderr as it goes and one JSON object on the "
        "last stdout line. Modes run in this order on the same processes: the open loop "
        "(runs when --runs is given or no --in-flight is), one closed loop per --in-flight, "
        "then --restart.",
    )
    _add_database_url(bench)
    bench.add_argument(
        "--runs",
        type=whole_number(),
        metavar="N",
        help="open loop: runs started as fast as the control plane takes them (default: 1000)",
    )
    bench.add_argument(
        "--in-flight",
        type=whole_number(),
        action="append",
        metavar="N",
        help="closed loop: keep N runs going, each followed to its end before the next "
        "starts; repeat for several settings (--in-flight 1 --in-flight 16)",
    )
    bench.add_argument(
        "--follow",
        choices=FOLLOW_MODES,
        action="append",
        help="closed loop: how a loop learns its run ended: `wait`, the StartRun call "
        "answers at the end (wait_seconds; one call per run), or `watch`, a WatchRun stream "
        "of its events (also reports StartRun's own latency); repeat for both "
        "(default: both, each setting measured once per mode)",
    )
    bench.add_argument(
        "--seconds",
        type=whole_number(1, 3600),
        default=10,
        metavar="S",
        help="closed loop: seconds measured per setting, after a warm-up of about 1 s "
        "(default: 10)",
    )
    bench.add_argument(
        "--restart",
        action="store_true",
        help="after the other modes, SIGKILL the control plane under a small closed loop, "
        "start it again on the same address and report restart_gap_ms: from its listening "
        "line to the first run it completed reaching the client",
    )
    bench.add_argument(
        "--workers",
        type=whole_number(),
        metavar="K",
        help="worker processes (default: the bench's)",
    )
    bench.add_argument(
        "--tls",
        action="store_true",
        help="serve over TLS with a throwaway CA (needs the openssl command)",
    )
    bench.add_argument(
        "--auth",
        action="store_true",
        help="give the server an auth file with one generated token, which the workers and "
        "the bench present (without it the server runs with --no-auth)",
    )
    bench.set_defaults(func=run_bench)


def _add_server_tls_arguments(parser: argparse.ArgumentParser) -> None:
    tls = parser.add_argument_group("TLS (without --tls-cert the listener is plaintext)")
    tls.add_argument(
        "--tls-cert",
        default=os.environ.get("SUREFOOT_SERVER_TLS_CERT") or None,
        metavar="PATH",
        help="PEM certificate (chain) of the server; turns TLS on (env SUREFOOT_SERVER_TLS_CERT)",
    )
    tls.add_argument(
        "--tls-key",
        default=os.environ.get("SUREFOOT_SERVER_TLS_KEY") or None,
        metavar="PATH",
        help="PEM private key of --tls-cert, unencrypted (env SUREFOOT_SERVER_TLS_KEY)",
    )
    tls.add_argument(
        "--tls-client-ca",
        default=os.environ.get("SUREFOOT_SERVER_TLS_CLIENT_CA") or None,
        metavar="PATH",
        help="PEM bundle of the CAs that sign client certificates: every client must then "
        "present one (mutual TLS) (env SUREFOOT_SERVER_TLS_CLIENT_CA)",
    )


def _server_tls(args: argparse.Namespace) -> None:
    """Exit 2 with one line unless the TLS options name usable, matching files."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise usage_error("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise usage_error("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
    if not args.tls_cert:
        return
    from controlplane.tls_files import TlsFilesError, read_tls_files

    try:
        read_tls_files(
            ca=args.tls_client_ca, cert=args.tls_cert, key=args.tls_key, ca_option="--tls-client-ca"
        )
    except TlsFilesError as exc:
        raise usage_error(str(exc)) from exc


def _add_worker_limit_arguments(server: argparse.ArgumentParser) -> None:
    """What one client may send: a stream past a limit ends RESOURCE_EXHAUSTED naming it."""
    # The defaults are api/stream_limits.py's, repeated so that --help needs no import.
    limits = server.add_argument_group("limits")
    limits.add_argument(
        "--max-message-bytes",
        type=whole_number(65_536),
        default=4 * 1024 * 1024,
        metavar="N",
        help="largest gRPC message received or sent: a run's input, a worker's result "
        "(default %(default)s; workers use the same by default)",
    )
    limits.add_argument(
        "--worker-max-step-types",
        type=whole_number(),
        default=500,
        metavar="N",
        help="step types one worker may declare in its Hello (default %(default)s)",
    )
    limits.add_argument(
        "--worker-messages-per-second",
        type=_positive_float,
        default=2000.0,
        metavar="F",
        help="messages one worker stream may send per second on average; results travel "
        "several to a message (default %(default)s)",
    )
    limits.add_argument(
        "--worker-message-burst",
        type=whole_number(),
        default=4000,
        metavar="N",
        help="messages one worker stream may send at once above that rate (default %(default)s)",
    )


def _add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get("SUREFOOT_DATABASE_URL"),
        metavar="URL",
        help="SQLAlchemy URL, e.g. postgresql+psycopg://user:pass@host/db or "
        "sqlite+pysqlite:///surefoot.db (env SUREFOOT_DATABASE_URL)",
    )


def _database_url(args: argparse.Namespace) -> str:
    if not args.database_url:
        raise usage_error("--database-url is required (or set SUREFOOT_DATABASE_URL)")
    return str(args.database_url)


def mask_password(url: str) -> str:
    """`postgresql://app:secret@db/x` -> `postgresql://app:***@db/x`, for printing."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def run_server(args: argparse.Namespace) -> int:
    logs.configure(args.log_format)
    url = _database_url(args)
    from controlplane.api.stream_limits import StreamLimits
    from controlplane.auth.auth_file import AuthFileError, read_auth_file
    from controlplane.metrics import MetricsConfig
    from controlplane.server import ServerConfig
    from controlplane.server import run_server as serve

    if args.auth_file:
        # Read once here so that a bad file is one line and exit 2 before anything starts;
        # the server reads it again when it builds its authenticator.
        try:
            read_auth_file(args.auth_file)
        except AuthFileError as exc:
            raise usage_error(str(exc)) from exc
        except ValueError as exc:  # not UTF-8
            raise usage_error(f"cannot read auth file {args.auth_file}: {exc}") from exc
    _server_tls(args)
    config = ServerConfig(
        database_url=url,
        listen=args.listen,
        lease_seconds=args.lease_seconds,
        poll_interval_seconds=args.poll_interval,
        auth_file=args.auth_file,
        no_auth=args.no_auth,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        max_message_bytes=args.max_message_bytes,
        worker_limits=StreamLimits(
            max_step_types=args.worker_max_step_types,
            messages_per_second=args.worker_messages_per_second,
            message_burst=args.worker_message_burst,
        ),
        health_listen=args.health_listen,
        metrics=MetricsConfig(args.metrics_listen, args.metrics_interval),
    )
    return int(serve(config))


def upgrade_database(args: argparse.Namespace) -> int:
    url = _database_url(args)
    from controlplane.store.migrate import upgrade_database as upgrade

    revision = upgrade(url)
    print(f"database at {mask_password(url)} is at revision {revision}")
    return 0


def run_worker(args: argparse.Namespace) -> int:
    from surefoot_worker import run_worker as run

    # Checked here: a bad token or TLS file is one line and exit 2 before anything starts.
    args.address = addresses_of(args)
    connection = connection_from_args(args)
    # Only what the user chose is passed, so the SDK's own defaults apply otherwise.
    options: dict[str, Any] = {"concurrency": args.concurrency} if args.concurrency else {}
    if args.max_reconnect_delay is not None:
        options["max_reconnect_delay"] = args.max_reconnect_delay
    return int(
        run(
            args.module,
            connection.address,
            namespace=args.namespace,
            token=connection.token,
            tls_ca=connection.tls_ca,
            tls_cert=connection.tls_cert,
            tls_key=connection.tls_key,
            tls_server_name=connection.tls_server_name,
            **options,
        )
    )


def run_dev(args: argparse.Namespace) -> int:
    from controlplane.dev import run_dev as dev

    return dev(data_dir=args.data_dir, listen=args.listen)


def run_bench(args: argparse.Namespace) -> int:
    url = _database_url(args)
    from controlplane.bench import run_bench as bench

    options = {k: v for k, v in (("runs", args.runs), ("workers", args.workers)) if v}
    return int(
        bench(
            url,
            tls=args.tls,
            auth=args.auth,
            in_flight=args.in_flight or (),
            follow=tuple(args.follow or FOLLOW_MODES),
            seconds=args.seconds,
            restart=args.restart,
            **options,
        )
    )
