"""ListCredentials a page at a time: each credential the caller administers once, oldest
first, however the pages fall across the rows read per statement; a page size out of range
or a token this list did not make is INVALID_ARGUMENT and writes nothing; `surefoot
credentials list --limit --page-token` over a real control plane."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import Engine
from surefoot.v1 import credential_service_pb2 as cpb
from surefoot.v1 import credential_service_pb2_grpc

from controlplane.auth.caller import Role
from controlplane.store import credentials as store
from controlplane.store.database import open_engine
from controlplane.store.run_queries import encode_page_token as runs_page_token
from tests.auth.auth_support import (
    A_ADMIN,
    ROOT,
    TEAM_A,
    TEAM_B,
    SecuredControlPlane,
    bearer,
    refused,
    row_counts,
)
from tests.support.processes import run_cli

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = open_engine(database_url, pool_size=1)
    yield made
    made.dispose()


def stub(secured: SecuredControlPlane) -> credential_service_pb2_grpc.CredentialServiceStub:
    return credential_service_pb2_grpc.CredentialServiceStub(secured.channel)


def create(secured: SecuredControlPlane, principal: str, namespace: str) -> str:
    """A token credential with the viewer role in `namespace`, made by root; its id."""
    request = cpb.CreateCredentialRequest(
        principal=principal, namespaces={namespace: cpb.NamespaceRoles(roles=["viewer"])}
    )
    made = stub(secured).CreateCredential(request, timeout=30, metadata=bearer(ROOT))
    return str(made.credential.id)


def pages(
    secured: SecuredControlPlane, token: str, request: cpb.ListCredentialsRequest
) -> list[list[str]]:
    """The ids of every page ListCredentials gives `token`'s holder, following the tokens."""
    found: list[list[str]] = []
    while True:
        page = stub(secured).ListCredentials(request, timeout=30, metadata=bearer(token))
        found.append([c.id for c in page.credentials])
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token


def test_store_pages_hold_each_shown_credential_once_across_batches_and_equal_times(
    engine: Engine,
) -> None:
    # Pairs made in the same microsecond: the id decides between them, in the token too.
    made: list[store.Credential] = []
    with engine.begin() as connection:
        for index in range(9):
            namespace = TEAM_A if index % 3 else TEAM_B
            made.append(
                store.create(
                    connection,
                    principal=f"p{index}",
                    kind=store.TOKEN,
                    key=f"sha256:{index:064x}",
                    roles={namespace: frozenset({Role.VIEWER})},
                    groups=[],
                    step_types=None,
                    description="",
                    created_by="test",
                    now=T0 + timedelta(microseconds=index // 2),
                )
            )
    in_order = sorted(made, key=lambda c: (c.created_at, c.id))
    team_a = [c.id for c in in_order if TEAM_A in c.namespaces]

    def read_all(page_size: int, batch: int) -> list[list[str]]:
        found: list[list[str]] = []
        token = ""
        with engine.connect() as connection:
            while True:
                page, token = store.page(
                    connection,
                    include_revoked=False,
                    # Only team-a's: a batch of team-b rows alone must not end a page early.
                    shown=lambda c: TEAM_A in c.namespaces,
                    page_size=page_size,
                    page_token=token,
                    batch=batch,
                )
                found.append([c.id for c in page])
                if not token:
                    return found

    assert len(team_a) == 6
    for page_size, batch in ((2, 2), (2, 1), (4, 3), (5, 500), (6, 2)):
        found = read_all(page_size, batch)
        assert [i for page in found for i in page] == team_a, (page_size, batch)
        assert all(len(page) == page_size for page in found[:-1]), (page_size, batch)
        assert 0 < len(found[-1]) <= page_size, (page_size, batch)


@pytest.mark.postgres
def test_credentials_two_at_a_time_each_once_oldest_first(secured: SecuredControlPlane) -> None:
    # N+1 = 5 of team-a, between credentials of team-b the admin of team-a does not see.
    mine: list[str] = []
    for index in range(5):
        mine.append(create(secured, f"paged-a{index}", TEAM_A))
        if index % 2:
            create(secured, f"paged-b{index}", TEAM_B)

    found = pages(secured, A_ADMIN, cpb.ListCredentialsRequest(page_size=2))
    assert found == [mine[0:2], mine[2:4], mine[4:5]]
    # Root sees team-b's too; asked for team-a's alone, it gets the same pages.
    asked = cpb.ListCredentialsRequest(namespace=TEAM_A, page_size=2)
    assert pages(secured, ROOT, asked) == found

    # A revoked credential leaves the pages unless they are asked to include it.
    stub(secured).RevokeCredential(
        cpb.RevokeCredentialRequest(id=mine[1]), timeout=30, metadata=bearer(ROOT)
    )
    active = [i for i in mine if i != mine[1]]
    found = pages(secured, A_ADMIN, cpb.ListCredentialsRequest(page_size=2))
    assert found == [active[0:2], active[2:4]]
    everything = cpb.ListCredentialsRequest(page_size=2, include_revoked=True)
    assert [i for page in pages(secured, A_ADMIN, everything) for i in page] == mine
    # Without a page size: one page of them all, and no token.
    assert pages(secured, A_ADMIN, cpb.ListCredentialsRequest()) == [active]


def _token(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


@pytest.mark.postgres
def test_a_bad_page_size_or_token_is_invalid_argument_and_writes_nothing(
    secured: SecuredControlPlane,
) -> None:
    create(secured, "bad-pages", "bad-pages")
    before = row_counts(secured.database_url)
    at = datetime.now(UTC).isoformat()
    size = "page_size: must be between 0 and 1000"
    token = "page_token: is not a token of this list"
    cases = {
        "negative size": (cpb.ListCredentialsRequest(page_size=-1), size),
        "size over the maximum": (cpb.ListCredentialsRequest(page_size=1001), size),
        "not base64 json": (cpb.ListCredentialsRequest(page_token="not-a-token"), token),
        "ListRuns' token": (
            cpb.ListCredentialsRequest(page_token=runs_page_token(datetime.now(UTC), "r-1")),
            token,
        ),
        "another list's name": (
            cpb.ListCredentialsRequest(page_token=_token({"l": "runs", "c": at, "i": "x"})),
            token,
        ),
        "no time zone": (
            cpb.ListCredentialsRequest(
                page_token=_token({"l": "credentials", "c": "2026-11-01T09:00:00", "i": "x"})
            ),
            token,
        ),
        "a NUL in the id": (
            cpb.ListCredentialsRequest(page_token=_token({"l": "credentials", "c": at, "i": "\0"})),
            token,
        ),
        "a time out of range in UTC": (
            cpb.ListCredentialsRequest(
                page_token=_token({"l": "credentials", "c": "0001-01-01T00:00:00+05:00", "i": "x"})
            ),
            token,
        ),
    }
    for name, (request, details) in cases.items():
        error = refused(stub(secured).ListCredentials, request, bearer(ROOT))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, error.details())
        assert error.details() == details, name
    assert row_counts(secured.database_url) == before


@pytest.mark.postgres
def test_credentials_list_limit_and_page_token_from_the_cli(secured: SecuredControlPlane) -> None:
    namespace = "paged-cli"
    made = [create(secured, f"cli-{index}", namespace) for index in range(3)]

    def cli(*args: str) -> tuple[int, str, str]:
        done = run_cli(
            "credentials",
            "list",
            "--namespace",
            namespace,
            *args,
            "--token",
            ROOT,
            "--address",
            secured.address,
        )
        return done.returncode, done.stdout, done.stderr

    code, out, err = cli("--limit", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ID", "PRINCIPAL"]
    assert [line.split()[0] for line in lines[1:]] == made[:2]
    assert err.startswith("next page: --page-token ") and err.count("\n") == 1, err
    next_token = err.split()[-1]

    code, out, err = cli("--limit", "2", "--page-token", next_token, "-o", "json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert [c["id"] for c in document["credentials"]] == made[2:]
    assert document["next_page_token"] == ""
    first = json.loads(cli("--limit", "2", "-o", "json")[1])
    assert first["next_page_token"] == next_token

    before = row_counts(secured.database_url)
    code, out, err = cli("--page-token", "not-a-token")
    assert (code, out) == (1, ""), err
    lines = err.splitlines()
    assert lines[0] == "error: INVALID_ARGUMENT: page_token: is not a token of this list"
    assert lines[1:] == ["  - page_token: is not a token of this list"], err
    for limit in ("0", "1001", "x"):
        code, out, err = cli("--limit", limit)
        assert (code, out) == (2, ""), (limit, err)
        assert "Traceback" not in err and "--limit" in err, (limit, err)
    assert row_counts(secured.database_url) == before
