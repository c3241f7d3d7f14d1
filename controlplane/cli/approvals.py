"""`surefoot approvals ...`: list, inspect and decide the approvals runs wait on.

Who decides is never an argument: the control plane takes it from the caller's credentials
(`--token`, or the OS user under `surefoot dev`), and records it with the decision.
"""

from __future__ import annotations

import argparse
import json
import sys

from surefoot.v1 import approval_pb2 as apb

from controlplane.cli import output
from controlplane.cli.arguments import page_size
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.errors import EXIT_REFUSED, CliError, usage_error
from controlplane.cli.payloads import json_payload


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "approvals",
        help="list, show, approve and reject approvals",
        description="Runs at an approval node wait (status WAITING) until someone allowed to "
        "decide approves or rejects. The decider is the caller: the principal of --token, "
        "or the OS user under `surefoot dev`. An approval's id is <run id>:<node id>.",
    )
    group.set_defaults(func=lambda args: output.print_group_help(group))
    commands = group.add_subparsers(title="commands", metavar="COMMAND")

    list_ = commands.add_parser("list", help="list approvals, pending ones by default")
    list_.add_argument("--workflow", default="", metavar="NAME", help="only this workflow's")
    list_.add_argument(
        "--approver",
        default="",
        metavar="P",
        help="only those principal P may decide (directly, through a group of the server's "
        "auth file, or as one of anyone)",
    )
    list_.add_argument(
        "--status",
        nargs="+",
        action="extend",
        type=_approval_status,
        default=[],
        metavar="S",
        help="only approvals in these statuses (pending, approved, rejected, withdrawn; "
        "default pending)",
    )
    list_.add_argument(
        "--limit", type=page_size, default=0, metavar="N", help="at most N (1-1000; default 100)"
    )
    list_.add_argument("--page-token", default="", metavar="T", help="continue a previous listing")
    add_client_arguments(list_)
    list_.set_defaults(func=list_approvals)

    show = commands.add_parser(
        "show", help="an approval: what its approver is shown, and the decision once made"
    )
    show.add_argument("approval_id", metavar="ID", help="approval id (<run id>:<node id>)")
    add_client_arguments(show)
    show.set_defaults(func=show_approval)

    for verb, approve in (("approve", True), ("reject", False)):
        decide = commands.add_parser(
            verb,
            help=f"{verb} a pending approval, as the caller",
            description=f"{verb.capitalize()} a pending approval. The decision is recorded in "
            "the run's history with your principal, the time, what the approval showed and "
            "your comment. A decided approval cannot be decided again.",
        )
        decide.add_argument("approval_id", metavar="ID", help="approval id (<run id>:<node id>)")
        decide.add_argument("--comment", default="", help="why (kept with the decision)")
        decide.add_argument(
            "--shown-hash",
            default="",
            metavar="HASH",
            help="the content hash `approvals show` printed: the decision is refused if the "
            "approval no longer shows what you saw",
        )
        if approve:
            given = decide.add_mutually_exclusive_group()
            # Own dests: `args.output` is the output format (--json), cli/output.py's.
            given.add_argument(
                "--output",
                dest="decision_output",
                metavar="JSON",
                help="the output an AI node's review gives the node, as JSON (or @PATH: read "
                "from PATH); required to approve a review, refused on other approvals",
            )
            given.add_argument(
                "--output-file",
                dest="decision_output_file",
                metavar="PATH",
                help="read the output JSON from PATH (-: stdin)",
            )
        add_client_arguments(decide, writes=True)
        decide.set_defaults(
            func=decide_approval,
            approve=approve,
            decision_output=None,
            decision_output_file=None,
        )


def _approval_status(text: str) -> int:
    try:
        return output.enum_value(apb.ApprovalStatus, text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _approvers_text(approval: apb.Approval, anyone: str = "anyone") -> str:
    return ", ".join(approval.approvers) or anyone


def list_approvals(args: argparse.Namespace) -> int:
    request = apb.ListApprovalsRequest(
        namespace=args.namespace,
        workflow_name=args.workflow,
        approver=args.approver,
        statuses=args.status,
        page_size=args.limit,
        page_token=args.page_token,
    )
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.ListApprovals, request)
    if args.json:
        output.print_json(response)
        return 0
    if not response.approvals:
        print("no approvals" if args.status else "no pending approvals")
    output.print_table(
        [
            *("id", "workflow", "title", "approvers", "requested", "deadline", "status"),
            *("run", "node", "decided by", "decided at"),
        ],
        [
            (
                a.id,
                f"{a.workflow_name}@{a.workflow_version}",
                a.title,
                _approvers_text(a),
                output.timestamp(a.requested_at),
                output.timestamp(a.deadline) or "-",
                output.enum_name(apb.ApprovalStatus, a.status),
                a.run_id,
                a.node_id,
                a.decided_by or "-",
                output.timestamp(a.decided_at) or "-",
            )
            for a in response.approvals
        ],
        wide_from=7,
    )
    reviews = [(a, review) for a in response.approvals if (review := ai_review(a)) is not None]
    if reviews:
        # What a reviewer decides on, beside the table: the reply that did not validate.
        print()
        for approval, (reply, errors) in reviews:
            first = f": {errors[0]}" if errors else ""
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            text = (
                f"{approval.id}: AI review, model reply {json.dumps(reply, ensure_ascii=False)}"
                f", {len(errors)} error(s){first}{more}"
            )
            print(output.truncate(text.replace("\n", " "), REVIEW_LINE))
    if response.next_page_token:
        print(f"next page: --page-token {response.next_page_token}", file=sys.stderr)
    return 0


# The width of an AI review's line under `approvals list` (show prints it whole).
REVIEW_LINE = 200
# What an AI node's review shows (engine/nodes/ai.py): the reply, the errors, the input.
_REVIEW_KEYS = {"reply", "errors", "input"}


def ai_review(approval: apb.Approval) -> tuple[str, list[str]] | None:
    """(last raw reply, validation errors) when the approval is an AI node's human review,
    recognised by what it shows; None for any other approval."""
    payload = approval.shown
    if payload.encoding not in ("", output.JSON_ENCODING) or not payload.data:
        return None
    try:
        shown = json.loads(payload.data)
    except ValueError:
        return None
    if not isinstance(shown, dict) or set(shown) != _REVIEW_KEYS:
        return None
    reply, errors = shown["reply"], shown["errors"]
    if not isinstance(reply, str) or not isinstance(errors, list):
        return None
    return reply, [str(e) for e in errors]


def show_approval(args: argparse.Namespace) -> int:
    request = apb.GetApprovalRequest(namespace=args.namespace, approval_id=args.approval_id)
    with ControlPlaneClient.from_args(args) as client:
        response = client.call(client.workflows.GetApproval, request)
    if args.json:
        output.print_json(response)
        return 0
    print_approval(response.approval)
    return 0


def print_approval(approval: apb.Approval) -> None:
    """The approval as a key: value block, then exactly what the approver is shown."""
    status = output.enum_name(apb.ApprovalStatus, approval.status)
    decided = approval.status in (apb.APPROVAL_STATUS_APPROVED, apb.APPROVAL_STATUS_REJECTED)
    withdrawn = approval.status == apb.APPROVAL_STATUS_WITHDRAWN
    output.print_fields(
        [
            ("approval", approval.id),
            ("title", approval.title),
            ("run", approval.run_id),
            ("workflow", f"{approval.workflow_name}@{approval.workflow_version}"),
            ("node", approval.node_id),
            ("status", status),
            ("approvers", _approvers_text(approval, "anyone authenticated")),
            ("escalated to", ", ".join(approval.escalated_to)),
            ("requested", output.timestamp(approval.requested_at)),
            ("deadline", output.timestamp(approval.deadline) or "none"),
            ("decision", status.lower() if decided else ""),
            ("by", _decider(approval) if decided else ""),
            ("at", output.timestamp(approval.decided_at) if decided else ""),
            ("withdrawn", output.timestamp(approval.decided_at) if withdrawn else ""),
            ("comment", approval.comment),
            # What --shown-hash of approve/reject takes: a decision on exactly this content.
            ("content", approval.content_hash),
        ]
    )
    review = ai_review(approval)
    if review is not None:
        reply, errors = review
        print("model reply (it did not validate):")
        for line in reply.splitlines() or [""]:
            print(f"  {line}")
        print("errors:")
        for error in errors or ["(none recorded)"]:
            print(f"  - {error}")
        if approval.status == apb.APPROVAL_STATUS_PENDING:
            print(
                f"approve with the output the node should have had: surefoot approvals "
                f"approve {approval.id} --output JSON"
            )
    print("shown:")
    for line in _shown_lines(approval):
        print(f"  {line}")


def _decider(approval: apb.Approval) -> str:
    if approval.decided_by_timeout:
        return f"{approval.decided_by or 'nobody'} (the deadline passed: default decision)"
    return approval.decided_by


def _shown_lines(approval: apb.Approval) -> list[str]:
    # The whole value, never truncated: this is what the decision was made on.
    payload = approval.shown
    if not payload.data:
        return ["{}"]
    if payload.encoding in ("", output.JSON_ENCODING):
        try:
            value = json.loads(payload.data)
        except ValueError:
            return [output.payload_text(payload, limit=None)]
        return json.dumps(value, indent=2, ensure_ascii=False).splitlines()
    return [output.payload_text(payload, limit=None)]


def decide_approval(args: argparse.Namespace) -> int:
    request = apb.DecideApprovalRequest(
        namespace=args.namespace,
        approval_id=args.approval_id,
        approve=args.approve,
        comment=args.comment,
        shown_hash=args.shown_hash,
    )
    # Checked before anything is sent: bad JSON or an unreadable file is exit 2.
    text: str | None = args.decision_output
    if text is not None and text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise usage_error(f"cannot read --output {text}: {exc}") from exc
    given = json_payload(text, args.decision_output_file, "output")
    if given is not None:
        request.output.CopyFrom(given)
    with ControlPlaneClient.from_args(args) as client:
        try:
            response = client.call(client.workflows.DecideApproval, request)
        except CliError as refused:
            if refused.exit_code != EXIT_REFUSED or len(refused.details) > 1:
                raise
            # One line: the refusal's message already names the field (output: ...).
            raise CliError(refused.message, refused.exit_code) from None
    if args.json:
        output.print_json(response)
        return 0
    approval = response.approval
    verb = "approved" if args.approve else "rejected"
    print(f"{verb} {approval.id or args.approval_id} as {approval.decided_by}")
    return 0
