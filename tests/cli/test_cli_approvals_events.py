"""`approvals`, `events`, `--token` and `server --auth-file`, against the canned service."""

from __future__ import annotations

import uuid

import pytest
from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import common_pb2

from controlplane.cli.main import build_parser, main

Capture = pytest.CaptureFixture[str]


def run(address: str, capsys: Capture, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--address", address])
    out, err = capsys.readouterr()
    return code, out, err


# --- approvals ---------------------------------------------------------------------------------


def test_approvals_list_is_a_table_and_sends_the_filters(control_plane, capsys) -> None:
    address, service = control_plane
    code, out, err = run(
        address,
        capsys,
        "approvals",
        "list",
        "--workflow",
        "onboarding",
        "--approver",
        "alice",
        "--status",
        "pending",
        "APPROVED",
        "--limit",
        "10",
    )
    assert code == 0
    assert out.splitlines() == [
        "ID             WORKFLOW      TITLE                     APPROVERS              "
        "REQUESTED             DEADLINE  STATUS",
        "run-1:approve  onboarding@1  Approve the new customer  alice, group:managers  "
        "2026-09-21T14:13:20Z  -         PENDING",
    ]
    assert err == "next page: --page-token tok-2\n"
    assert service.requests == [
        apb.ListApprovalsRequest(
            namespace="default",
            workflow_name="onboarding",
            approver="alice",
            statuses=[apb.APPROVAL_STATUS_PENDING, apb.APPROVAL_STATUS_APPROVED],
            page_size=10,
        )
    ]


def test_approvals_list_says_when_there_is_nothing_pending(control_plane, capsys) -> None:
    address, _ = control_plane
    code, out, _ = run(address, capsys, "approvals", "list", "--approver", "nobody")
    assert (code, out) == (0, "no pending approvals\n")


def test_approvals_show_prints_what_was_shown_and_the_decision(control_plane, capsys) -> None:
    address, service = control_plane
    code, out, _ = run(address, capsys, "approvals", "show", "run-1:approve")
    assert code == 0
    assert out.splitlines() == [
        "approval:  run-1:approve",
        "title:     Approve the new customer",
        "run:       run-1",
        "workflow:  onboarding@1",
        "node:      approve",
        "status:    REJECTED",
        "approvers: alice, group:managers",
        "requested: 2026-09-21T14:13:20Z",
        "deadline:  none",
        "decision:  rejected",
        "by:        alice",
        "at:        2026-09-21T14:13:21Z",
        "comment:   plan not offered in this region",
        "shown:",
        "  {",
        '    "customer": "ACME Corp",',
        '    "amount": 49,',
        '    "plan": "team"',
        "  }",
    ]
    assert service.requests == [
        apb.GetApprovalRequest(namespace="default", approval_id="run-1:approve")
    ]


def test_approvals_show_of_an_unknown_id_exits_1(control_plane, capsys) -> None:
    address, _ = control_plane
    code, out, err = run(address, capsys, "approvals", "show", "run-9:x")
    assert (code, out, err) == (1, "", "error: NOT_FOUND: approval run-9:x not found\n")


@pytest.mark.parametrize(("verb", "approve"), [("approve", True), ("reject", False)])
def test_a_decision_is_sent_with_the_token_and_never_names_the_decider(
    control_plane, capsys, verb: str, approve: bool
) -> None:
    address, service = control_plane
    code, out, err = run(
        address,
        capsys,
        "approvals",
        verb,
        "run-1:approve",
        "--comment",
        "ok by me",
        "--token",
        "alice-token",
    )
    assert (code, err) == (0, "")
    assert out == f"{verb.removesuffix('e')}ed run-1:approve as alice\n"
    (sent,) = service.requests
    # A new request id each time (a repeat after a timeout names it with --request-id).
    assert uuid.UUID(sent.request_id)
    assert sent == apb.DecideApprovalRequest(
        namespace="default",
        approval_id="run-1:approve",
        approve=approve,
        comment="ok by me",
        request_id=sent.request_id,
    )
    assert service.metadata[0]["authorization"] == "Bearer alice-token"


def test_a_refused_decision_is_one_line_and_exit_1(control_plane, capsys) -> None:
    address, service = control_plane
    code, out, err = run(address, capsys, "approvals", "approve", "run-1:approve")
    assert (code, out) == (1, "")
    assert err == "error: PERMISSION_DENIED: bob may not decide run-1:approve\n"
    assert "authorization" not in service.metadata[0]
    code, _, err = run(address, capsys, "approvals", "reject", "decided", "--token", "alice-token")
    assert code == 1
    assert err == "error: FAILED_PRECONDITION: approval decided is already APPROVED\n"


# --- --token -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["definitions", "list"],
        ["runs", "list"],
        ["runs", "show", "run-1"],
        ["runs", "cancel", "run-1", "--compensate"],
        ["approvals", "list"],
        ["events", "send", "paid", "--key", "k"],
    ],
    ids=" ".join,
)
def test_the_token_goes_as_bearer_metadata_on_every_client_command(
    control_plane, capsys, monkeypatch, command: list[str]
) -> None:
    address, service = control_plane
    monkeypatch.setenv("SUREFOOT_TOKEN", "t0k-from-env")
    assert run(address, capsys, *command)[0] == 0
    assert service.metadata[-1]["authorization"] == "Bearer t0k-from-env"
    assert run(address, capsys, *command, "--token", "t0k-flag")[0] == 0
    assert service.metadata[-1]["authorization"] == "Bearer t0k-flag"


def test_without_a_token_no_authorization_is_sent(control_plane, capsys) -> None:
    address, service = control_plane
    assert run(address, capsys, "runs", "list")[0] == 0
    assert "authorization" not in service.metadata[0]


def test_the_token_is_not_printed_by_help(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SUREFOOT_TOKEN", "s3cret-token")
    with pytest.raises(SystemExit):
        main(["approvals", "approve", "--help"])
    help_text = capsys.readouterr().out
    assert "--token TOKEN" in help_text and "SUREFOOT_TOKEN" in help_text
    assert "s3cret-token" not in help_text


def test_a_token_that_cannot_be_a_header_exits_2_before_sending(control_plane, capsys) -> None:
    address, service = control_plane
    code, out, err = run(address, capsys, "runs", "list", "--token", "two words")
    assert (code, out) == (2, "")
    assert err == "error: --token must be printable ASCII without spaces\n"
    assert service.requests == []


# --- events ------------------------------------------------------------------------------------


def test_events_send_prints_the_runs_it_reached(control_plane, capsys) -> None:
    address, service = control_plane
    code, out, err = run(
        address,
        capsys,
        "events",
        "send",
        "card-added",
        "--key",
        "it@initech.test",
        "--payload",
        '{"card": "visa-4242"}',
        "--event-id",
        "ev-9",
    )
    assert (code, out, err) == (0, "run-1\nrun-2\n", "")
    assert service.requests == [
        apb.SendEventRequest(
            namespace="default",
            event_name="card-added",
            correlation_key="it@initech.test",
            payload=common_pb2.Payload(encoding="json/plain", data=b'{"card":"visa-4242"}'),
            event_id="ev-9",
        )
    ]


def test_an_event_nobody_waits_for_is_stored(control_plane, capsys) -> None:
    address, service = control_plane
    code, out, _ = run(address, capsys, "events", "send", "paid", "--key", "nobody-waits")
    assert (code, out) == (0, "stored: no run waits yet (event id ev-1)\n")
    (request,) = service.requests
    assert not request.HasField("payload") or request.payload.data == b""


def test_events_send_needs_a_key_and_json(surefoot, unused_address) -> None:
    missing = surefoot("events", "send", "paid", "--address", unused_address)
    assert missing.returncode == 2
    assert "the following arguments are required: --key" in missing.stderr
    bad = surefoot("events", "send", "paid", "--key", "k", "--payload", "{x", "--address", "h:1")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: --payload is not valid JSON: ")
    assert len(bad.stderr.splitlines()) == 1


def test_approval_status_filters_accept_short_names() -> None:
    args = build_parser().parse_args(["approvals", "list", "--status", "withdrawn", "REJECTED"])
    assert args.status == [apb.APPROVAL_STATUS_WITHDRAWN, apb.APPROVAL_STATUS_REJECTED]


# --- server --auth-file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tokens: [a, b]\n", "expected a 'tokens' mapping"),
        ("tokens:\n  t1: {groups: [managers]}\n", "every token needs a principal"),
        ("tokens: {t1: [\n", "cannot read auth file"),
        (None, "cannot read auth file"),
    ],
    ids=["not-a-mapping", "no-principal", "bad-yaml", "missing"],
)
def test_a_bad_auth_file_is_one_line_and_exit_2_before_anything_starts(
    monkeypatch, capsys, tmp_path, content: str | None, message: str
) -> None:
    auth = tmp_path / "auth.yaml"
    if content is not None:
        auth.write_text(content)
    database = tmp_path / "never-created.db"
    url = f"sqlite+pysqlite:///{database}"
    assert main(["server", "--database-url", url, "--auth-file", str(auth)]) == 2
    monkeypatch.setenv("SUREFOOT_AUTH_FILE", str(auth))
    assert main(["server", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 2
    for line in err.splitlines():
        assert line.startswith("error: ") and message in line and str(auth) in line
    assert not database.exists()
