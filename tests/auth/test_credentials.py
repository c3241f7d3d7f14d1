"""`surefoot credentials`: the first admin written to the database, then every credential
made, listed and revoked through the API by an admin of the namespaces concerned; each change
in audit_log; no secret ever shown twice."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import select
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.auth.tokens import token_hash
from controlplane.cli.main import main
from controlplane.store.database import open_engine
from controlplane.store.schema import audit_log
from tests.auth.auth_support import (
    A_ADMIN,
    A_VIEWER,
    TEAM_A,
    TEAM_B,
    SecuredControlPlane,
    bearer,
    refused,
    row_counts,
)

pytestmark = pytest.mark.postgres

Capture = pytest.CaptureFixture[str]


def cli(secured: SecuredControlPlane, capsys: Capture, *args: str) -> tuple[int, str, str]:
    code = main(["credentials", *args, "--address", secured.address])
    out, err = capsys.readouterr()
    return code, out, err


def created(out: str) -> tuple[str, str]:
    """(credential id, token) from `credentials create`'s output."""
    lines = out.splitlines()
    token = next(line.removeprefix("token: ") for line in lines if line.startswith("token: "))
    return lines[0].split()[1], token


def audit_rows(database_url: str) -> list[tuple[str, str, dict[str, object]]]:
    engine = open_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(audit_log).order_by(audit_log.c.seq))
            return [(r.principal, r.action, json.loads(r.details)) for r in rows]
    finally:
        engine.dispose()


def test_the_first_admin_then_create_list_revoke_through_the_api_all_audited(
    secured: SecuredControlPlane, capsys: Capture
) -> None:
    url = secured.database_url
    # Bootstrap: no token yet, so straight to the database.
    code, out, err = cli(
        secured, capsys, "create", "boss", "--role", "*=admin", "--database-url", url
    )
    assert code == 0, err
    boss_id, boss = created(out)
    assert "shown once" in err

    code, out, err = cli(
        secured,
        capsys,
        "create",
        "ci",
        "--role",
        f"{TEAM_A}=operator,approver",
        "--group",
        "release",
        "--description",
        "the CI pipeline",
        "--token",
        boss,
    )
    assert code == 0, err
    ci_id, ci = created(out)
    assert out.splitlines()[0] == f"credential {ci_id} for ci: {TEAM_A}=operator,approver"

    # The new token works in its namespace, and only there.
    listing = ws.ListRunsRequest(namespace=TEAM_A)
    secured.stub.ListRuns(listing, timeout=30, metadata=bearer(ci))
    other = ws.ListRunsRequest(namespace=TEAM_B)
    assert refused(secured.stub.ListRuns, other, bearer(ci)).code().name == "NOT_FOUND"

    code, out, err = cli(secured, capsys, "list", "--all-namespaces", "--token", boss)
    assert code == 0, err
    assert ci_id in out and boss_id in out and "the CI" not in out
    # Neither a token nor its hash is ever listed.
    for secret in (ci, boss, token_hash(ci), "sha256:"):
        assert secret not in out
    code, out, err = cli(secured, capsys, "list", "--all-namespaces", "--json", "--token", boss)
    listed = {c["id"]: c for c in json.loads(out)["credentials"]}
    assert listed[ci_id]["namespaces"] == {TEAM_A: {"roles": ["approver", "operator"]}}
    assert listed[ci_id]["groups"] == ["release"] and listed[ci_id]["created_by"] == "boss"
    assert ci not in out and "sha256:" not in out

    code, out, err = cli(secured, capsys, "revoke", ci_id, "--token", boss)
    assert (code, out) == (0, f"credential {ci_id} (ci) revoked\n"), err
    assert refused(secured.stub.ListRuns, listing, bearer(ci)).code().name == "UNAUTHENTICATED"
    code, out, err = cli(secured, capsys, "revoke", ci_id, "--token", boss)
    assert out == f"credential {ci_id} (ci) was already revoked\n"
    code, out, _ = cli(secured, capsys, "list", "--all-namespaces", "--token", boss)
    assert ci_id not in out
    code, out, _ = cli(secured, capsys, "list", "--all-namespaces", "--revoked", "--token", boss)
    assert ci_id in out

    trail = [(p, a, d["credential_id"]) for p, a, d in audit_rows(url)]
    mine = [row for row in trail if row[2] in (boss_id, ci_id)]
    assert [(a, i) for _, a, i in mine] == [
        ("credential.create", boss_id),
        ("credential.create", ci_id),
        ("credential.revoke", ci_id),
    ]
    assert mine[0][0].endswith("@database") and mine[1][0] == mine[2][0] == "boss"


def test_only_admins_of_the_namespaces_concerned_manage_credentials(
    secured: SecuredControlPlane, capsys: Capture
) -> None:
    code, out, err = cli(
        secured, capsys, "create", "ops-a", "--role", f"{TEAM_A}=operator", "--token", A_ADMIN
    )
    assert code == 0, err  # an admin of team-a grants roles in team-a
    ops_id, _ = created(out)
    before = row_counts(secured.database_url)

    refusals = {
        "viewer creates": (
            ["create", "x", "--role", f"{TEAM_A}=viewer", "--token", A_VIEWER],
            "PERMISSION_DENIED",
        ),
        "admin of a grants in b": (
            ["create", "x", "--role", f"{TEAM_B}=viewer", "--token", A_ADMIN],
            "NOT_FOUND",
        ),
        "admin of a grants everywhere": (
            ["create", "x", "--role", "*=viewer", "--token", A_ADMIN],
            "NOT_FOUND",
        ),
        "viewer lists": (["list", "--namespace", TEAM_A, "--token", A_VIEWER], "PERMISSION_DENIED"),
        "viewer revokes": (["revoke", ops_id, "--token", A_VIEWER], "PERMISSION_DENIED"),
        "unknown id": (["revoke", "no-such-id", "--token", A_ADMIN], "NOT_FOUND"),
        "no token": (["list"], "UNAUTHENTICATED"),
    }
    for name, (args, status) in refusals.items():
        code, out, err = cli(secured, capsys, *args)
        assert code == 1 and out == "", name
        assert err.startswith(f"error: {status}"), (name, err)
        assert err.count("\n") == 1, name
    assert row_counts(secured.database_url) == before


def test_a_bad_role_is_a_usage_error_and_hash_prints_the_auth_file_key(
    secured: SecuredControlPlane, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = row_counts(secured.database_url)
    for role in ("team-a", "team-a=", "=viewer"):
        code, _, err = cli(secured, capsys, "create", "x", "--role", role, "--token", A_ADMIN)
        assert code == 2 and err.startswith("error: --role"), err
    code, _, err = cli(
        secured,
        capsys,
        "create",
        "x",
        "--role",
        f"{TEAM_A}=superuser",
        "--database-url",
        secured.database_url,
    )
    assert code == 2 and "unknown role 'superuser'" in err, err
    assert row_counts(secured.database_url) == before

    monkeypatch.setattr("sys.stdin", io.StringIO("  s3cret  \n"))
    assert main(["credentials", "hash"]) == 0
    assert capsys.readouterr().out == f"{token_hash('s3cret')}\n"
