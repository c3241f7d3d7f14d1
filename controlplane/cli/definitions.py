"""`surefoot definitions ...`: register, list, show, compare and deprecate definitions."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml
from surefoot.v1 import definition_pb2, evaluation_service_pb2_grpc
from surefoot.v1 import evaluation_service_pb2 as es
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli import output
from controlplane.cli.arguments import page_size
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.errors import CliError, usage_error


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "definitions",
        help="register, list and show workflow definitions",
        description="Workflow definitions are immutable: name@version plus a content hash.",
    )
    group.set_defaults(func=lambda args: output.print_group_help(group))
    commands = group.add_subparsers(title="commands", metavar="COMMAND")

    apply = commands.add_parser(
        "apply",
        help="register the definitions of a file or Python module",
        description=(
            "Register every definition in a YAML/JSON file (one definition, a list, or "
            "{definitions: [...]}) or a Python module (dotted name or .py path) whose "
            "top-level objects are WorkflowDefinition messages or Workflow builders. "
            "Registering identical content again is a no-op. A file's eval set beside it "
            "(orders.yaml -> orders.eval.yaml) is attached to each of its definitions that "
            "has an ai node (README: Evaluating AI nodes)."
        ),
    )
    apply.add_argument("source", metavar="FILE|MODULE", help="definition file or module")
    add_client_arguments(apply, writes=True)
    apply.set_defaults(func=apply_definitions)

    list_ = commands.add_parser(
        "list",
        help="list registered definitions",
        description="List the registered definitions, by name and registration order. "
        "ListDefinitions answers with every version at once, so --limit and --page-token "
        "page on this side of the call: the same flags as every other list.",
    )
    list_.add_argument("--name", default="", help="only the versions of this workflow")
    list_.add_argument(
        "--limit", type=page_size, default=0, metavar="N", help="at most N (1-1000; default all)"
    )
    list_.add_argument(
        "--page-token",
        type=_page_offset,
        default=0,
        metavar="T",
        help="continue a previous listing",
    )
    add_client_arguments(list_)
    list_.set_defaults(func=list_definitions)

    show = commands.add_parser(
        "show",
        help="print a definition as YAML",
        description="Print a definition as YAML that `definitions apply` accepts back.",
    )
    show.add_argument("ref", metavar="NAME[@VERSION]", help="workflow name, latest by default")
    add_client_arguments(show)
    show.set_defaults(func=show_definition)

    diff = commands.add_parser(
        "diff",
        help="show what changed between two versions",
        description=(
            "Compare two definitions node by node: nodes added, removed, and each changed "
            "field with its old and new value. B may be a bare version of A's workflow."
        ),
    )
    diff.add_argument("before", metavar="NAME@A", help="the older definition")
    diff.add_argument("after", metavar="NAME@B|B", help="the newer definition")
    diff.add_argument(
        "--unified", action="store_true", help="a unified diff of the YAML forms instead"
    )
    add_client_arguments(diff)
    diff.set_defaults(func=diff_definitions)

    deprecate = commands.add_parser(
        "deprecate",
        help="stop new runs on a version; its runs in flight finish on it",
        description=(
            "Deprecate NAME@VERSION: StartRun on it is refused and `latest` moves to the "
            "newest active version. Runs already on it finish on it; the output says how "
            "many are still in flight."
        ),
    )
    deprecate.add_argument("ref", metavar="NAME@VERSION", help="the version to deprecate")
    deprecate.add_argument("--reason", default="", help="why, kept with the version")
    add_client_arguments(deprecate, writes=True)
    deprecate.set_defaults(func=lambda args: change_deprecation(args, reinstate=False))

    reinstate = commands.add_parser(
        "reinstate", help="allow new runs on a deprecated version again"
    )
    reinstate.add_argument("ref", metavar="NAME@VERSION", help="the version to reinstate")
    add_client_arguments(reinstate, writes=True)
    reinstate.set_defaults(func=lambda args: change_deprecation(args, reinstate=True))


def split_ref(ref: str, need_version: bool = False) -> tuple[str, str]:
    """`orders@3` -> ("orders", "3"); `orders` -> ("orders", "") which means the latest."""
    name, _, version = ref.partition("@")
    if need_version and (not name or not version):
        raise usage_error(f"expected NAME@VERSION, got {ref!r}")
    if not name:
        raise usage_error(f"expected NAME[@VERSION], got {ref!r}")
    return name, version


def _page_offset(text: str) -> int:
    # The token of a client-side page is how many definitions came before it.
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a page token of this command")
    return int(text)


def apply_definitions(args: argparse.Namespace) -> int:
    # Imported here: the worker SDK package is only needed by commands that author definitions.
    from surefoot_worker.authoring import DefinitionFileError, load_definitions

    # `surefoot definitions apply mymodule` names a module of the current project, which the
    # console script's sys.path does not contain.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        definitions = load_definitions(args.source)
    except DefinitionFileError as exc:
        raise usage_error(str(exc)) from exc
    eval_set = _eval_set_beside(args.source)
    results = []
    attached: list[dict[str, object]] = []
    with ControlPlaneClient.from_args(args) as client:
        for definition in definitions:
            request = ws.RegisterDefinitionRequest(namespace=args.namespace, definition=definition)
            try:
                response = client.call(client.workflows.RegisterDefinition, request)
            except CliError as exc:
                # Earlier definitions of the file are registered; say which one failed.
                exc.message = f"{definition.name}@{definition.version}: {exc.message}"
                raise
            results.append(response)
            if not args.json:
                ref = f"{response.info.name}@{response.info.version}"
                if response.created:
                    print(f"registered {ref} ({output.short_hash(response.info.content_hash)}…)")
                else:
                    print(f"unchanged {ref}")
            if eval_set is not None and any(n.WhichOneof("kind") == "ai" for n in definition.nodes):
                attached.append(_put_eval_set(client, args, definition, *eval_set))
    if args.json:
        document: dict[str, object] = {"results": [output.message_dict(r) for r in results]}
        if attached:
            document["eval_sets"] = attached
        output.print_json(document)
    return 0


def _eval_set_beside(source: str) -> tuple[Path, str] | None:
    """The eval set file beside a definition file (`x.yaml` -> `x.eval.yaml`) and its text."""
    path = Path(source)
    if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
        return None
    beside = path.with_name(f"{path.stem}.eval{path.suffix}")
    if not beside.is_file():
        return None
    try:
        return beside, beside.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise usage_error(f"{beside}: cannot be read: {exc}") from exc


def _put_eval_set(
    client: ControlPlaneClient,
    args: argparse.Namespace,
    definition: definition_pb2.WorkflowDefinition,
    path: Path,
    text: str,
) -> dict[str, object]:
    name, version = definition.name, definition.version
    stub = evaluation_service_pb2_grpc.EvaluationServiceStub(client._channel)
    request = es.PutEvalSetRequest(
        namespace=args.namespace, workflow_name=name, workflow_version=version, eval_set=text
    )
    try:
        response = client.call(stub.PutEvalSet, request)
    except CliError as exc:
        exc.message = f"{name}@{version}: eval set {path.name}: {exc.message}"
        raise
    if not args.json:
        state = "attached" if response.created else "unchanged"
        print(f"{state} eval set {path.name} to {name}@{version}")
    return {
        "workflow": f"{name}@{version}",
        "file": str(path),
        "eval_set_hash": response.eval_set_hash,
        "created": response.created,
    }


def list_definitions(args: argparse.Namespace) -> int:
    with ControlPlaneClient.from_args(args) as client:
        request = ws.ListDefinitionsRequest(namespace=args.namespace, name=args.name)
        response = client.call(client.workflows.ListDefinitions, request)
    # Paged here: the API returns every version (see the command's description).
    end = args.page_token + args.limit if args.limit else len(response.definitions)
    page = response.definitions[args.page_token : end]
    next_token = str(end) if end < len(response.definitions) else ""
    if next_token:
        print(f"next page: --page-token {next_token}", file=sys.stderr)
    if args.json:
        output.print_json(
            {
                "definitions": [output.message_dict(d) for d in page],
                "next_page_token": next_token,
            }
        )
        return 0
    if not page:
        print(f"no definitions in namespace {args.namespace}")
        return 0
    output.print_table(
        ["name", "version", "seq", "hash", "status", "in flight", "registered", "full hash"],
        [
            (
                d.name,
                d.version,
                d.sequence,
                output.short_hash(d.content_hash),
                f"deprecated by {d.deprecated_by or '?'}" if d.deprecated else "active",
                d.runs_in_flight,
                output.timestamp(d.registered_at),
                d.content_hash,
            )
            for d in page
        ],
        wide_from=6,
    )
    return 0


def change_deprecation(args: argparse.Namespace, reinstate: bool) -> int:
    name, version = split_ref(args.ref, need_version=True)
    request = ws.DeprecateDefinitionRequest(
        namespace=args.namespace,
        name=name,
        version=version,
        reason=getattr(args, "reason", ""),
        reinstate=reinstate,
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.DeprecateDefinition, request)
    if args.json:
        output.print_json(response)
        return 0
    info = response.info
    ref = f"{info.name}@{info.version}"
    runs, finish = ("run", "finishes") if info.runs_in_flight == 1 else ("runs", "finish")
    if reinstate:
        print(f"reinstated {ref}" if response.changed else f"{ref} was not deprecated")
    elif response.changed:
        print(f"deprecated {ref}: {info.runs_in_flight} {runs} in flight {finish} on it")
    else:
        print(f"{ref} was already deprecated: {info.runs_in_flight} {runs} in flight")
    return 0


def diff_definitions(args: argparse.Namespace) -> int:
    from surefoot_worker.authoring import definition_to_dict

    from controlplane.cli import definition_diff

    before_name, before_version = split_ref(args.before, need_version=True)
    if "@" in args.after:
        after_name, after_version = split_ref(args.after, need_version=True)
    else:
        after_name, after_version = before_name, args.after
    with ControlPlaneClient.from_args(args) as client:
        fetched = [
            client.call(
                client.workflows.GetDefinition,
                ws.GetDefinitionRequest(namespace=args.namespace, name=name, version=version),
            )
            for name, version in ((before_name, before_version), (after_name, after_version))
        ]
    before, after = (definition_to_dict(f.definition) for f in fetched)
    refs = [f"{f.info.name}@{f.info.version}" for f in fetched]
    if args.json:
        found = definition_diff.diff_definitions(before, after)
        output.print_json({"before": refs[0], "after": refs[1]} | found.as_dict())
    elif args.unified:
        print(definition_diff.unified(before, after, refs[0], refs[1]), end="")
    else:
        found = definition_diff.diff_definitions(before, after)
        print(definition_diff.describe(found, refs[0], refs[1], after), end="")
    return 0


def show_definition(args: argparse.Namespace) -> int:
    from surefoot_worker.authoring import definition_to_dict

    name, version = split_ref(args.ref)
    with ControlPlaneClient.from_args(args) as client:
        request = ws.GetDefinitionRequest(namespace=args.namespace, name=name, version=version)
        response = client.call(client.workflows.GetDefinition, request)
    if args.json:
        output.print_json(response)
        return 0
    info = response.info
    # A comment, so that the output stays a file `definitions apply` accepts.
    digest = info.content_hash.removeprefix("sha256:")
    print(f"# {info.name}@{info.version}  sha256:{digest}  sequence {info.sequence}")
    if info.deprecated:
        why = f": {info.deprecation_reason}" if info.deprecation_reason else ""
        print(f"# deprecated by {info.deprecated_by or '?'}{why}")
    body = definition_to_dict(response.definition)
    print(yaml.safe_dump(body, sort_keys=False, allow_unicode=True), end="")
    return 0
