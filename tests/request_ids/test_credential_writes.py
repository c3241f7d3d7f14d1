"""Credentials under request ids: a repeated create makes no second credential and never
shows (or keeps) the token again; a repeated revoke answers as the first revoke."""

from __future__ import annotations

import uuid

import grpc
import pytest
from sqlalchemy import select
from surefoot.v1 import credential_service_pb2 as cpb
from surefoot.v1.credential_service_pb2_grpc import CredentialServiceStub

from controlplane.store.database import open_engine
from controlplane.store.schema import write_requests
from tests.auth.auth_support import row_counts
from tests.request_ids.request_support import refusal, twice
from tests.support.approval_auth import OPERATOR, AuthControlPlane, bearer

pytestmark = pytest.mark.postgres


def kept_answers(database_url: str) -> list[bytes]:
    engine = open_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            return [bytes(r.response) for r in connection.execute(select(write_requests))]
    finally:
        engine.dispose()


def test_a_repeated_create_names_the_credential_made_and_its_token_is_kept_nowhere(
    server: AuthControlPlane,
) -> None:
    stub = CredentialServiceStub(server.channel)
    create = cpb.CreateCredentialRequest(
        principal="ci-bot",
        namespaces={"default": cpb.NamespaceRoles(roles=["viewer"])},
        request_id=uuid.uuid4().hex,
    )
    made = stub.CreateCredential(create, timeout=30, metadata=bearer(OPERATOR))
    assert made.token
    before = row_counts(server.database_url)

    again = refusal(lambda: stub.CreateCredential(create, timeout=30, metadata=bearer(OPERATOR)))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS
    assert made.credential.id in (again.details() or "")
    assert made.token not in (again.details() or "")
    assert row_counts(server.database_url) == before
    assert not any(made.token.encode() in answer for answer in kept_answers(server.database_url))

    revoke = cpb.RevokeCredentialRequest(id=made.credential.id, request_id=uuid.uuid4().hex)
    revoked, _ = twice(stub.RevokeCredential, revoke)
    assert isinstance(revoked, cpb.RevokeCredentialResponse)
    # The first revoke changed it: its repeat says so (a plain second revoke would not).
    assert revoked.changed and revoked.credential.revoked_by
