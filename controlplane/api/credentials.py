"""surefoot.v1.CredentialService: create, list and revoke credentials, as an admin.

Who may manage which credential: an admin of every namespace the credential has a role in
(`api/access.py` checks creation; listing and revoking look at the stored credential here).
A caller with no role in any of them gets NOT_FOUND. Every change is audited in its own
transaction (store/credentials.py); a token is in the answer to its creation and nowhere
else.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
from sqlalchemy import Connection, Engine
from surefoot.v1 import credential_service_pb2 as cpb
from surefoot.v1 import credential_service_pb2_grpc

from controlplane import errors
from controlplane.api import convert, request_ids
from controlplane.auth.authenticator import Authenticator
from controlplane.auth.caller import ANY_NAMESPACE, Caller, Role
from controlplane.auth.grants import checked_grant, issue
from controlplane.store import credentials as store
from controlplane.store import write_requests
from controlplane.store.database import reader

MAX_PAGE = 1000
DEFAULT_PAGE = 100
_KINDS = {
    store.TOKEN: cpb.CREDENTIAL_KIND_TOKEN,
    store.CERTIFICATE: cpb.CREDENTIAL_KIND_CERTIFICATE,
}


class CredentialService(credential_service_pb2_grpc.CredentialServiceServicer):  # type: ignore[misc]
    def __init__(self, engine: Engine, auth: Authenticator) -> None:
        self._engine = engine
        self._auth = auth

    async def CreateCredential(
        self, request: cpb.CreateCredentialRequest, context: grpc.aio.ServicerContext
    ) -> cpb.CreateCredentialResponse:
        if request.kind not in (cpb.CREDENTIAL_KIND_UNSPECIFIED, *_KINDS.values()):
            raise errors.InvalidArgument.field("kind", "is not a credential kind")
        certificate = request.kind == cpb.CREDENTIAL_KIND_CERTIFICATE
        if certificate and not request.subject:
            raise errors.InvalidArgument.field(
                "subject", "is required: the CN of the client certificates it stands for"
            )
        if not certificate and request.subject:
            raise errors.InvalidArgument.field("subject", "is for certificate credentials only")
        grant = checked_grant(
            principal=request.principal,
            namespaces={ns: list(held.roles) for ns, held in request.namespaces.items()},
            certificate_subject=request.subject,
            groups=list(request.groups),
            step_types=list(request.step_types),
            description=request.description,
        )
        creator = await self._auth.acting_principal(context)
        # Credentials belong to no namespace: their request ids are kept under "".
        key = request_ids.key_of("", request, creator)

        def write() -> tuple[store.Credential, str]:
            with self._engine.begin() as connection:
                if key is not None and (first := write_requests.find(connection, key)):
                    # The answer kept has no token: a secret is shown once, never kept.
                    made = cpb.CreateCredentialResponse.FromString(first).credential
                    raise errors.AlreadyExists(
                        f"request id {key.request_id!r} already created credential {made.id} "
                        f"for {made.principal}; its token was shown only in that answer "
                        "(revoke it and create another if it was lost)"
                    )
                created, token = issue(connection, grant, creator, datetime.now(UTC))
                if key is not None:
                    kept = cpb.CreateCredentialResponse(credential=credential_message(created))
                    request_ids.keep(connection, key, kept)
                return created, token

        created, token = await asyncio.to_thread(write)
        return cpb.CreateCredentialResponse(credential=credential_message(created), token=token)

    async def ListCredentials(
        self, request: cpb.ListCredentialsRequest, context: grpc.aio.ServicerContext
    ) -> cpb.ListCredentialsResponse:
        caller = await self._auth.caller(context)
        if not any(Role.ADMIN in held for held in caller.roles.values()):
            raise errors.PermissionDenied(f"{caller.principal} is admin of no namespace")
        if not 0 <= request.page_size <= MAX_PAGE:
            raise errors.InvalidArgument.field("page_size", f"must be between 0 and {MAX_PAGE}")

        def shown(credential: store.Credential) -> bool:
            return manages(caller, credential) and (
                not request.namespace
                or bool({request.namespace, ANY_NAMESPACE} & credential.namespaces)
            )

        def read() -> tuple[list[store.Credential], str]:
            with reader(self._engine).connect() as connection:
                return store.page(
                    connection,
                    include_revoked=request.include_revoked,
                    shown=shown,
                    page_size=request.page_size or DEFAULT_PAGE,
                    page_token=request.page_token,
                )

        try:
            listed, token = await asyncio.to_thread(read)
        except store.BadPageToken as exc:
            raise errors.InvalidArgument.field("page_token", str(exc)) from None
        return cpb.ListCredentialsResponse(
            credentials=[credential_message(c) for c in listed], next_page_token=token
        )

    async def RevokeCredential(
        self, request: cpb.RevokeCredentialRequest, context: grpc.aio.ServicerContext
    ) -> cpb.RevokeCredentialResponse:
        if not request.id:
            raise errors.InvalidArgument.field("id", "is required")
        caller = await self._auth.caller(context)
        revoker = await self._auth.acting_principal(context)

        def change(connection: Connection) -> cpb.RevokeCredentialResponse:
            found = store.get(connection, request.id)
            if found is None or not any(caller.roles_in(ns) for ns in found.namespaces):
                raise errors.NotFound(f"credential {request.id} not found")
            for namespace in sorted(found.namespaces):
                caller.require(namespace, Role.ADMIN)
            revoked, changed = store.revoke(connection, found, revoker, datetime.now(UTC))
            return cpb.RevokeCredentialResponse(
                credential=credential_message(revoked), changed=changed
            )

        key = request_ids.key_of("", request, revoker)
        response = await request_ids.written(
            self._engine, context, key, change, lambda made: made, cpb.RevokeCredentialResponse
        )
        # Calls to this process stop working now; other control planes within a second.
        self._auth.forget()
        return response

    async def WhoAmI(
        self, request: cpb.WhoAmIRequest, context: grpc.aio.ServicerContext
    ) -> cpb.WhoAmIResponse:
        caller = await self._auth.caller(context)
        return cpb.WhoAmIResponse(
            principal=caller.principal,
            groups=[g.removeprefix("group:") for g in caller.groups],
            namespaces={
                ns: cpb.NamespaceRoles(roles=sorted(role.value for role in held))
                for ns, held in sorted(caller.roles.items())
            },
            source=self._source(caller),
            credential_id=caller.credential_id,
        )

    def _source(self, caller: Caller) -> cpb.CallerSource.ValueType:
        # The trusted caller of a server without credentials is the one object it hands to
        # every call that brings none; any other caller came from a credential.
        if caller is not self._auth.trusted:
            return cpb.CALLER_SOURCE_CREDENTIAL
        return cpb.CALLER_SOURCE_DEV if caller.authenticated else cpb.CALLER_SOURCE_NO_AUTH


def manages(caller: Caller, credential: store.Credential) -> bool:
    """Whether `caller` is admin of every namespace `credential` has a role in."""
    return all(caller.may(ns, Role.ADMIN) for ns in credential.namespaces)


def credential_message(credential: store.Credential) -> cpb.Credential:
    """The credential as the API shows it: never its token or the token's hash."""
    return cpb.Credential(
        id=credential.id,
        principal=credential.principal,
        kind=_KINDS[credential.kind],
        subject=credential.subject,
        namespaces={ns: cpb.NamespaceRoles(roles=held) for ns, held in credential.roles.items()},
        groups=credential.groups,
        step_types=credential.step_types or [],
        description=credential.description,
        created_by=credential.created_by,
        created_at=convert.timestamp(credential.created_at),
        revoked_by=credential.revoked_by,
        revoked_at=convert.timestamp(credential.revoked_at),
    )
