"""Who is calling: the principal comes from credentials, never from a request field.

A server started with an auth file maps bearer tokens (`authorization: Bearer <token>`
metadata) to principals and their groups. The embedded dev mode trusts the local OS user.
Without either, callers are anonymous: they may read and start runs, but not decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import grpc
import yaml

from controlplane import errors

ANONYMOUS = "anonymous"


class Role(StrEnum):
    """What a credential may do in a namespace."""

    VIEWER = "viewer"  # read runs, histories, approvals, dead letters, definitions
    OPERATOR = "operator"  # start, cancel, retry, skip, redrive, send events
    APPROVER = "approver"  # decide the approvals it is named for
    WORKER = "worker"  # connect a worker stream and run tasks
    ADMIN = "admin"  # definitions, deprecation, credentials; and everything above


# The roles each role carries with it.
_IMPLIED: dict[Role, frozenset[Role]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.VIEWER}),
    Role.APPROVER: frozenset({Role.APPROVER, Role.VIEWER}),
    Role.WORKER: frozenset({Role.WORKER}),
    Role.ADMIN: frozenset(Role),
}

# A key of `Caller.roles` that stands for every namespace (dev mode, a server without
# credentials, an installation-wide admin).
ANY_NAMESPACE = "*"


def expand(roles: frozenset[Role] | set[Role]) -> frozenset[Role]:
    """The roles with those they imply."""
    return frozenset(r for role in roles for r in _IMPLIED[role])


@dataclass(frozen=True)
class Caller:
    principal: str
    # As approvers name them: "group:<name>".
    groups: tuple[str, ...] = ()
    # Roles by namespace, already expanded (`expand`); ANY_NAMESPACE applies to every one.
    roles: Mapping[str, frozenset[Role]] = field(
        default_factory=lambda: {ANY_NAMESPACE: frozenset(Role)}
    )
    # A worker credential limited to these step types; None: any step type.
    step_types: frozenset[str] | None = None
    # The stored credential this caller presented ("" for dev mode and anonymous callers).
    credential_id: str = ""

    @property
    def authenticated(self) -> bool:
        return self.principal != ANONYMOUS

    def roles_in(self, namespace: str) -> frozenset[Role]:
        return self.roles.get(namespace, frozenset()) | self.roles.get(ANY_NAMESPACE, frozenset())

    def may(self, namespace: str, role: Role) -> bool:
        return role in self.roles_in(namespace)

    def require(self, namespace: str, role: Role) -> None:
        """NotFound when the caller has no role at all in `namespace` (what is there is not
        its business, not even that it exists); PermissionDenied when it lacks `role`."""
        held = self.roles_in(namespace)
        if not held:
            raise errors.NotFound(f"namespace {namespace!r} not found")
        if role not in held:
            raise errors.PermissionDenied(
                f"{self.principal} is not {role.value} in namespace {namespace!r}"
            )


class AuthFileError(ValueError):
    pass


class Authenticator:
    def __init__(self, tokens: dict[str, Caller] | None = None, local_user: str = "") -> None:
        self._tokens = tokens or {}
        self._local_user = local_user

    @classmethod
    def from_file(cls, path: str, local_user: str = "") -> Authenticator:
        """Read `tokens: {<token>: {principal: alice, groups: [managers]}}` from YAML."""
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise AuthFileError(f"cannot read auth file {path}: {exc}") from exc
        tokens: dict[str, Caller] = {}
        entries = (data or {}).get("tokens") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise AuthFileError(f"auth file {path}: expected a 'tokens' mapping")
        for token, entry in entries.items():
            if not isinstance(entry, dict) or not entry.get("principal"):
                raise AuthFileError(f"auth file {path}: every token needs a principal")
            listed = entry.get("groups") or []
            if isinstance(listed, str):
                listed = [listed]
            groups = tuple(f"group:{g}" for g in listed)
            tokens[str(token)] = Caller(str(entry["principal"]), groups)
        return cls(tokens, local_user)

    def identities(self, principal: str) -> tuple[str, ...]:
        """The principal and the groups the auth file gives it: who it may decide as."""
        groups = {
            g
            for caller in self._tokens.values()
            if caller.principal == principal
            for g in caller.groups
        }
        return (principal, *sorted(groups))

    async def caller(self, context: grpc.aio.ServicerContext) -> Caller:
        """Who calls; Unauthenticated for an unknown token, or none where one is required."""
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        header = str(metadata.get("authorization", ""))
        if header.lower().startswith("bearer "):
            found = self._tokens.get(header[7:].strip())
            if found is None:
                raise errors.Unauthenticated("unknown bearer token")
            return found
        if self._local_user:
            return Caller(self._local_user)
        if self._tokens:
            raise errors.Unauthenticated(
                "this server requires a bearer token (authorization metadata)"
            )
        return Caller(ANONYMOUS)

    async def acting_principal(self, context: grpc.aio.ServicerContext) -> str:
        """The name history records for the caller: authenticated, or anonymous@peer."""
        caller = await self.caller(context)
        return caller.principal if caller.authenticated else principal_of(context)


def principal_of(context: grpc.aio.ServicerContext) -> str:
    """A label for history when no authenticated caller is needed."""
    return f"{ANONYMOUS}@{context.peer()}"
