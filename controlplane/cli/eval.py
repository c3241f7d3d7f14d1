"""`surefoot eval`: run a version's eval set through its AiNodes, gate it, keep the outcome.

    surefoot eval NAME@VERSION [--against NAME@OTHER]   the version's eval set
    surefoot eval --recorded NAME@VERSION --since 7d    replies recorded in real runs
    surefoot eval list NAME[@VERSION]                    evaluations recorded, newest first
    surefoot eval show ID                                one evaluation, case by case

The model calls are made here, by the connector's own code (the same rendering, structured
output and repairs as in a run), with the API keys of --secrets-file or SUREFOOT_SECRET_*;
the control plane only keeps the eval set and the outcomes. A run's history is only read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from surefoot.v1 import evaluation_service_pb2 as es
from surefoot.v1 import evaluation_service_pb2_grpc, run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli import output
from controlplane.cli.arguments import page_size, point_in_time
from controlplane.cli.channels import Connection, connection_from_args
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.definitions import split_ref
from controlplane.cli.errors import EXIT_OK, CliError, usage_error

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp
    from surefoot.v1 import definition_pb2
    from surefoot_connectors.secrets import Secrets

    from controlplane.evaluation.runner import ModelCall, NodeRunner
    from controlplane.evaluation.scoring import CaseResult, Summary

EXIT_BELOW_THRESHOLD = 4
EXIT_WORSE_THAN_AGAINST = 5
RUNS_PAGE = 200
HISTORY_PAGE = 1000

EPILOG = """\
exit codes of an evaluation:
  0  it passed: its score reached the threshold (and with --against, it is not worse)
  1  the control plane refused a request, or something unexpected failed
  2  bad arguments or a bad secrets file; nothing was run
  3  the control plane cannot be reached
  4  its score is below the eval set's threshold (--threshold with --recorded)
  5  it is worse than --against: a lower score, or a case that passed there fails here
The outcome is recorded (RecordEvaluation) whatever it is, unless --no-record.
"""


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a version's AI nodes before it takes traffic",
        description=(
            "`surefoot eval NAME@VERSION` runs the version's eval set (attached at "
            "registration from the file beside the definition) through its ai nodes, prints "
            "a score table and the regressions case by case, and records the outcome. "
            "`--recorded` re-scores the replies accepted in real runs of NAME (any version) "
            "against VERSION's nodes, writing nothing to those runs. `surefoot eval list "
            "NAME[@VERSION]` and `surefoot eval show ID` read the recorded outcomes."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "target", metavar="NAME@VERSION|list|show", help="the version to evaluate, or a command"
    )
    parser.add_argument(
        "argument", nargs="?", default="", metavar="NAME[@VERSION]|ID", help="of list / show"
    )
    parser.add_argument("--against", default="", metavar="NAME@OTHER", help="compare with")
    parser.add_argument(
        "--recorded", action="store_true", help="score the replies recorded in real runs"
    )
    parser.add_argument(
        "--since", default="7d", metavar="AGE|TIME", help="with --recorded: runs created since"
    )
    parser.add_argument(
        "--max-runs",
        type=page_size,
        default=200,
        metavar="N",
        help="with --recorded: at most N runs, newest first (default %(default)s)",
    )
    parser.add_argument(
        "--threshold",
        type=_fraction,
        default=None,
        metavar="T",
        help="with --recorded: the score needed (default: the version's eval set's, or 1)",
    )
    parser.add_argument(
        "--secrets-file", default=None, metavar="FILE", help="API keys of the connections"
    )
    parser.add_argument("--comment", default="", help="kept with the outcome (e.g. the CI job)")
    parser.add_argument("--no-record", action="store_true", help="do not record the outcome")
    parser.add_argument("--limit", type=page_size, default=50, metavar="N", help="list: at most N")
    parser.add_argument("--page-token", default="", metavar="T", help="list: continue")
    add_client_arguments(parser, writes=True)
    parser.set_defaults(func=dispatch)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be from 0 to 1")
    return value


class EvaluationClient(ControlPlaneClient):
    def __init__(self, connection: Connection, namespace: str, request_id: str = "") -> None:
        super().__init__(connection, namespace, request_id)
        self.evaluations = evaluation_service_pb2_grpc.EvaluationServiceStub(self._channel)

    def __enter__(self) -> EvaluationClient:
        return self


def _client(args: argparse.Namespace) -> EvaluationClient:
    client = EvaluationClient(connection_from_args(args), args.namespace, args.request_id)
    client._repeatable = True
    return client


def dispatch(args: argparse.Namespace) -> int:
    if args.target == "list":
        return list_evaluations(args)
    if args.target == "show":
        return show_evaluation(args)
    if args.argument:
        raise usage_error(f"unexpected argument {args.argument!r}")
    return evaluate(args)


def evaluate(args: argparse.Namespace) -> int:
    from surefoot_connectors.secrets import Secrets, SecretsFileError

    from controlplane.evaluation.runner import NodeRunner, connector_call

    name, version = split_ref(args.target, need_version=True)
    if args.recorded and args.against:
        raise usage_error("--against compares eval sets: not with --recorded")
    against = split_ref(args.against, need_version=True) if args.against else None
    if against and against[0] != name:
        raise usage_error(f"--against must be a version of {name}")
    try:
        since = point_in_time(args.since) if args.recorded else None
    except ValueError:
        raise usage_error(f"--since: {args.since!r} is neither an age (7d) nor a time") from None
    try:
        secrets = Secrets.load(file=args.secrets_file)
    except SecretsFileError as exc:
        raise usage_error(f"--secrets-file: {exc}") from exc
    call = connector_call(secrets)
    with _client(args) as client:
        definition = _definition(client, name, version)
        runner = NodeRunner(definition, call, secrets)
        if args.recorded:
            assert since is not None
            evaluation = _recorded(client, args, runner, since)
            compared: list[CaseResult] | None = None
        else:
            evaluation, compared = _set(client, args, runner, against, secrets, call)
        evaluation.comment = args.comment
        if not args.no_record:
            recorded = client.call(
                client.evaluations.RecordEvaluation,
                es.RecordEvaluationRequest(evaluation=evaluation),
            )
            evaluation = recorded.evaluation
    _print_outcome(evaluation, compared)
    if evaluation.passed:
        return EXIT_OK
    worse = evaluation.against_version and (
        evaluation.regressions or (compared is not None and evaluation.score < _mean(compared))
    )
    return EXIT_WORSE_THAN_AGAINST if worse else EXIT_BELOW_THRESHOLD


def _set(
    client: EvaluationClient,
    args: argparse.Namespace,
    runner: NodeRunner,
    against: tuple[str, str] | None,
    secrets: Secrets,
    call: ModelCall,
) -> tuple[es.Evaluation, list[CaseResult] | None]:
    from controlplane.evaluation import parse_eval_set, summarize
    from controlplane.evaluation.runner import NodeRunner

    name, version = runner.definition.name, runner.definition.version
    found = client.call(
        client.evaluations.GetEvalSet,
        es.GetEvalSetRequest(
            namespace=args.namespace, workflow_name=name, workflow_version=version
        ),
    )
    eval_set = parse_eval_set(found.eval_set, runner.definition)
    compared = None
    if against is not None:
        other = NodeRunner(_definition(client, *against), call, secrets)
        compared = [other.run_case(case) for case in eval_set.cases]
    results = [runner.run_case(case) for case in eval_set.cases]
    summary = summarize(results, eval_set.threshold, compared)
    evaluation = _evaluation(args, runner, "set", results, summary, eval_set.threshold)
    evaluation.eval_set_hash = found.eval_set_hash
    evaluation.against_version = against[1] if against else ""
    return evaluation, compared


def _recorded(
    client: EvaluationClient, args: argparse.Namespace, runner: NodeRunner, since: Timestamp
) -> es.Evaluation:
    from controlplane.evaluation import parse_eval_set, summarize
    from controlplane.evaluation.recorded import recorded_replies, score_recorded

    name, version = runner.definition.name, runner.definition.version
    threshold, set_hash = 1.0, ""
    try:
        found = client.call(
            client.evaluations.GetEvalSet,
            es.GetEvalSetRequest(
                namespace=args.namespace, workflow_name=name, workflow_version=version
            ),
        )
        threshold = parse_eval_set(found.eval_set, runner.definition).threshold
        set_hash = found.eval_set_hash
    except CliError as exc:
        # Without an eval set the threshold is --threshold's, or 1.
        if not exc.message.startswith("NOT_FOUND:"):
            raise
    if args.threshold is not None:
        threshold = args.threshold
    replies = [
        reply
        for run_id in _run_ids(client, args, name, since)
        for reply in recorded_replies(_history(client, args, run_id))
    ]
    if not replies:
        raise CliError(f"no AI step of {name} completed in runs created since {args.since}")
    results = [score_recorded(runner, reply) for reply in replies]
    summary = summarize(results, threshold)
    evaluation = _evaluation(args, runner, "recorded", results, summary, threshold)
    evaluation.eval_set_hash = set_hash
    return evaluation


def _evaluation(
    args: argparse.Namespace,
    runner: NodeRunner,
    kind: str,
    results: list[CaseResult],
    summary: Summary,
    threshold: float,
) -> es.Evaluation:
    return es.Evaluation(
        namespace=args.namespace,
        workflow_name=runner.definition.name,
        workflow_version=runner.definition.version,
        kind=kind,
        score=summary.score,
        threshold=threshold,
        passed=summary.passed,
        cases=len(results),
        passed_cases=summary.passed_cases,
        regressions=summary.regressions,
        case_results=[
            es.EvaluationCase(
                name=r.name,
                node_id=r.node_id,
                passed=r.passed,
                score=r.score,
                output_json=json.dumps(r.output, ensure_ascii=False) if r.validated else "",
                failures=r.failures,
                regressed=r.regressed,
                tokens=r.tokens,
                latency_ms=r.latency_ms,
            )
            for r in results
        ],
    )


def _definition(
    client: EvaluationClient, name: str, version: str
) -> definition_pb2.WorkflowDefinition:
    request = ws.GetDefinitionRequest(namespace=client.namespace, name=name, version=version)
    return client.call(client.workflows.GetDefinition, request).definition


def _run_ids(
    client: EvaluationClient, args: argparse.Namespace, name: str, since: Timestamp
) -> Iterator[str]:
    token, seen = "", 0
    while seen < args.max_runs:
        request = ws.ListRunsRequest(
            namespace=args.namespace,
            workflow_name=name,
            created_after=since,
            page_size=min(RUNS_PAGE, args.max_runs - seen),
            page_token=token,
        )
        response = client.call(client.workflows.ListRuns, request)
        for run in response.runs:
            seen += 1
            yield run.id
        token = response.next_page_token
        if not token or not response.runs:
            return


def _history(
    client: EvaluationClient, args: argparse.Namespace, run_id: str
) -> list[run_pb2.HistoryEvent]:
    events: list[run_pb2.HistoryEvent] = []
    while True:
        request = ws.GetRunHistoryRequest(
            namespace=args.namespace,
            run_id=run_id,
            after_seq=events[-1].seq if events else 0,
            limit=HISTORY_PAGE,
        )
        page = client.call(client.workflows.GetRunHistory, request).events
        events.extend(page)
        if len(page) < HISTORY_PAGE:
            return events


def _mean(results: list[CaseResult]) -> float:
    return sum(r.score for r in results) / len(results) if results else 0.0


def _print_outcome(evaluation: es.Evaluation, compared: list[CaseResult] | None) -> None:
    if output.selected_format() in ("json", "yaml"):
        document: dict[str, Any] = {"evaluation": output.message_dict(evaluation)}
        if compared is not None:
            document["against_score"] = _mean(compared)
        output.print_json(document)
        return
    before = {(r.name, r.node_id): r for r in compared or ()}
    headers = ["case", "node", "score", "passed"]
    if compared is not None:
        headers.append(f"@{evaluation.against_version}")
    headers += ["tokens", "ms", "failure"]
    rows = []
    for case in evaluation.case_results:
        row: list[object] = [case.name, case.node_id, f"{case.score:.2f}", case.passed]
        if compared is not None:
            previous = before.get((case.name, case.node_id))
            row.append("-" if previous is None else ("yes" if previous.passed else "no"))
        row += [case.tokens, f"{case.latency_ms:.0f}", case.failures[0] if case.failures else ""]
        rows.append(row)
    output.print_table(headers, rows)
    label = f"{evaluation.workflow_name}@{evaluation.workflow_version}"
    verdict = "passed" if evaluation.passed else "FAILED"
    line = (
        f"{label}: score {evaluation.score:.3f} (threshold {evaluation.threshold:g}), "
        f"{evaluation.passed_cases}/{evaluation.cases} cases passed"
    )
    if compared is not None:
        line += f"; @{evaluation.against_version} scored {_mean(compared):.3f}"
    print(f"{line}: {verdict}")
    regressed = [c for c in evaluation.case_results if c.regressed]
    if regressed:
        print(f"regressions ({len(regressed)}):")
        for case in regressed:
            why = "; ".join(case.failures) or "failed"
            print(f"  {case.name} ({case.node_id}): {why}")
    if evaluation.id:
        print(f"recorded as {evaluation.id}")


def list_evaluations(args: argparse.Namespace) -> int:
    if not args.argument:
        raise usage_error("eval list needs NAME[@VERSION]")
    name, version = split_ref(args.argument)
    request = es.ListEvaluationsRequest(
        namespace=args.namespace,
        workflow_name=name,
        workflow_version=version,
        page_size=args.limit,
        page_token=args.page_token,
    )
    with _client(args) as client:
        response = client.call(client.evaluations.ListEvaluations, request)
    if response.next_page_token:
        print(f"next page: --page-token {response.next_page_token}", file=sys.stderr)
    if args.json:
        output.print_json(response)
        return EXIT_OK
    if not response.evaluations:
        print(f"no evaluations of {args.argument}")
        return EXIT_OK
    output.print_table(
        [
            "id",
            "version",
            "kind",
            "score",
            "threshold",
            "passed",
            "cases",
            "regressions",
            "against",
            "recorded",
            "by",
        ],
        [
            (
                e.id,
                e.workflow_version,
                e.kind,
                f"{e.score:.3f}",
                f"{e.threshold:g}",
                e.passed,
                f"{e.passed_cases}/{e.cases}",
                e.regressions,
                e.against_version,
                output.timestamp(e.recorded_at),
                e.recorded_by,
            )
            for e in response.evaluations
        ],
    )
    return EXIT_OK


def show_evaluation(args: argparse.Namespace) -> int:
    if not args.argument:
        raise usage_error("eval show needs an evaluation ID")
    request = es.GetEvaluationRequest(namespace=args.namespace, id=args.argument)
    with _client(args) as client:
        evaluation = client.call(client.evaluations.GetEvaluation, request).evaluation
    if args.json:
        output.print_json(evaluation)
        return EXIT_OK
    output.print_fields(
        [
            ("id", evaluation.id),
            ("workflow", f"{evaluation.workflow_name}@{evaluation.workflow_version}"),
            ("kind", evaluation.kind),
            ("against", evaluation.against_version),
            ("score", f"{evaluation.score:.3f} (threshold {evaluation.threshold:g})"),
            ("passed", "yes" if evaluation.passed else "no"),
            ("cases", f"{evaluation.passed_cases}/{evaluation.cases} passed"),
            ("regressions", evaluation.regressions),
            ("eval set", output.short_hash(evaluation.eval_set_hash)),
            ("recorded", f"{output.timestamp(evaluation.recorded_at)} by {evaluation.recorded_by}"),
            ("comment", evaluation.comment),
        ]
    )
    print()
    output.print_table(
        ["case", "node", "score", "passed", "regressed", "output", "failures"],
        [
            (
                c.name,
                c.node_id,
                f"{c.score:.2f}",
                c.passed,
                c.regressed,
                output.truncate(c.output_json, 60),
                "; ".join(c.failures),
            )
            for c in evaluation.case_results
        ],
    )
    return EXIT_OK
