"""The access table and the authenticator, without a server: every RPC has a rule, auth files
are read strictly, and each server mode finds the caller it promises."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from surefoot.v1 import (
    audit_service_pb2,
    credential_service_pb2,
    evaluation_service_pb2,
    operation_service_pb2,
    worker_admin_service_pb2,
    worker_service_pb2,
    workflow_service_pb2,
)

from controlplane import errors
from controlplane.api.access import CLOSED, RULES, authorize, rule_for
from controlplane.auth.auth_file import AuthFileError, read_auth_file
from controlplane.auth.authenticator import Authenticator
from controlplane.auth.caller import ANONYMOUS, Caller, Role, expand
from controlplane.auth.tokens import new_token, token_hash

SERVICES = [
    workflow_service_pb2.DESCRIPTOR.services_by_name["WorkflowService"],
    worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"],
    worker_service_pb2.DESCRIPTOR.services_by_name["ConnectorOutcomeService"],
    audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"],
    credential_service_pb2.DESCRIPTOR.services_by_name["CredentialService"],
    worker_admin_service_pb2.DESCRIPTOR.services_by_name["WorkerAdminService"],
    operation_service_pb2.DESCRIPTOR.services_by_name["OperationService"],
    evaluation_service_pb2.DESCRIPTOR.services_by_name["EvaluationService"],
]


def test_every_method_of_every_service_has_a_rule() -> None:
    methods = {f"/{s.full_name}/{m.name}" for s in SERVICES for m in s.methods}
    assert methods - set(RULES) == set(), "a method without an access rule is closed"
    assert set(RULES) - methods == set(), "a rule for a method that does not exist"
    assert rule_for("/surefoot.v1.WorkflowService/NotYetThere") is CLOSED


def test_a_rule_requires_its_role_in_the_request_namespace() -> None:
    rule = RULES["/surefoot.v1.WorkflowService/CancelRun"]
    viewer = Caller("v", roles={"team-a": expand({Role.VIEWER})})
    request = workflow_service_pb2.CancelRunRequest(namespace="team-a", run_id="r")
    with pytest.raises(errors.PermissionDenied):
        authorize(viewer, rule, request)
    with pytest.raises(errors.NotFound):
        authorize(viewer, rule, workflow_service_pb2.CancelRunRequest(namespace="team-b"))
    # An empty namespace is "default": no role there either.
    with pytest.raises(errors.NotFound):
        authorize(viewer, rule, workflow_service_pb2.CancelRunRequest())
    with pytest.raises(errors.InvalidArgument):
        authorize(viewer, rule, workflow_service_pb2.CancelRunRequest(namespace="Not Valid"))
    admin = Caller("a", roles={"*": expand({Role.ADMIN})})
    authorize(admin, rule, request)


def test_creating_a_credential_needs_admin_in_each_namespace_it_grants() -> None:
    rule = RULES["/surefoot.v1.CredentialService/CreateCredential"]
    admin_a = Caller("a", roles={"team-a": expand({Role.ADMIN})})
    roles = credential_service_pb2.NamespaceRoles(roles=["viewer"])
    own = credential_service_pb2.CreateCredentialRequest(namespaces={"team-a": roles})
    authorize(admin_a, rule, own)
    for granted in ({"team-a": roles, "team-b": roles}, {"*": roles}):
        request = credential_service_pb2.CreateCredentialRequest(namespaces=granted)
        with pytest.raises(errors.NotFound):
            authorize(admin_a, rule, request)


def _write(path: Path, document: Any) -> str:
    path.write_text(yaml.safe_dump(document))
    return str(path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"plain-token": {"principal": "a", "namespaces": {"default": ["viewer"]}}}, "sha256"),
        ({token_hash("t"): {"principal": "a"}}, "namespaces"),
        ({token_hash("t"): {"principal": "a", "namespaces": {"default": ["root"]}}}, "'root'"),
        ({token_hash("t"): {"principal": "a", "namespaces": {"Bad NS": ["viewer"]}}}, "Bad NS"),
        ({token_hash("t"): {"namespaces": {"default": ["viewer"]}}}, "principal"),
    ],
)
def test_an_auth_file_is_read_strictly(tmp_path: Path, entry: Any, message: str) -> None:
    with pytest.raises(AuthFileError, match=message):
        read_auth_file(_write(tmp_path / "auth.yaml", {"tokens": entry}))


class _Context:
    """What the authenticator reads of a call: its metadata, TLS identity and peer."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = (), cn: str = "") -> None:
        self._metadata = metadata
        self._cn = cn

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_common_name": [self._cn.encode()]} if self._cn else {}

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"


def _caller(auth: Authenticator, context: _Context) -> Caller:
    return asyncio.run(auth.caller(context))  # type: ignore[arg-type]


def test_each_mode_finds_the_caller_it_promises(tmp_path: Path) -> None:
    token = new_token()
    assert token.startswith("sft_") and len(token) > 40
    path = _write(
        tmp_path / "auth.yaml",
        {
            "tokens": {
                token_hash(token): {
                    "principal": "alice",
                    "groups": ["managers"],
                    "namespaces": {"default": ["operator"]},
                }
            },
            "certificates": {"batch": {"principal": "batch", "namespaces": {"x": "viewer"}}},
        },
    )
    bearer = (("authorization", f"Bearer {token}"),)
    wrong = (("authorization", "Bearer nope"),)

    required = Authenticator.required(None, path)
    alice = _caller(required, _Context(bearer))
    assert (alice.principal, alice.groups) == ("alice", ("group:managers",))
    assert alice.roles_in("default") == {Role.OPERATOR, Role.VIEWER}
    assert _caller(required, _Context(cn="batch")).roles_in("x") == {Role.VIEWER}
    for refused in (_Context(), _Context(wrong), _Context(cn="stranger")):
        with pytest.raises(errors.Unauthenticated):
            _caller(required, refused)

    open_access = Authenticator.open_access(None, path)
    anonymous = _caller(open_access, _Context())
    assert anonymous.principal == ANONYMOUS and anonymous.may("any", Role.ADMIN)
    assert asyncio.run(open_access.acting_principal(_Context())) == "anonymous@ipv4:127.0.0.1:5555"  # type: ignore[arg-type]
    with pytest.raises(errors.Unauthenticated):
        _caller(open_access, _Context(wrong))  # a wrong token is never anonymous

    dev = Authenticator.dev("me")
    assert _caller(dev, _Context()).principal == "me"
    assert _caller(dev, _Context()).may("whatever", Role.APPROVER)
    with pytest.raises(errors.Unauthenticated):
        _caller(dev, _Context(wrong))

    assert required.identities("alice") == ("alice", "group:managers")
