"""Who calls and what it may do: roles per namespace, the same for every kind of credential.

A caller comes from a credential (a bearer token, a client certificate), from dev mode (the
local OS user) or from a server started with `--no-auth` (anonymous). It never comes from a
request field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from controlplane import errors
from controlplane.api.namespaces import valid_namespace

ANONYMOUS = "anonymous"

# A key of `Caller.roles` that stands for every namespace (dev mode, a server without
# credentials, an installation-wide admin).
ANY_NAMESPACE = "*"


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

ALL_ROLES: Mapping[str, frozenset[Role]] = {ANY_NAMESPACE: frozenset(Role)}


def expand(roles: frozenset[Role] | set[Role]) -> frozenset[Role]:
    """The roles with those they imply."""
    return frozenset(r for role in roles for r in _IMPLIED[role])


class BadRoles(ValueError):
    """A namespaces-to-roles mapping that names an unknown role or a malformed namespace."""


def parse_roles(value: object, where: str = "namespaces") -> dict[str, frozenset[Role]]:
    """`{namespace: [role, ...]}` as written in an auth file or a request, checked (not
    expanded: `expand_all` does that); a single role may be written as a string."""
    if not isinstance(value, Mapping) or not value:
        raise BadRoles(f"{where} must map at least one namespace to its roles")
    parsed: dict[str, frozenset[Role]] = {}
    for namespace, listed in value.items():
        name = str(namespace)
        if name != ANY_NAMESPACE and not valid_namespace(name):
            raise BadRoles(f"{where}: {name!r} is not a namespace name (or '*')")
        names: Iterable[object] = [listed] if isinstance(listed, str) else (listed or [])
        roles: set[Role] = set()
        for role in names:
            try:
                roles.add(Role(str(role)))
            except ValueError:
                known = ", ".join(r.value for r in Role)
                raise BadRoles(f"{where}[{name}]: unknown role {role!r} ({known})") from None
        if not roles:
            raise BadRoles(f"{where}[{name}]: needs at least one role")
        parsed[name] = frozenset(roles)
    return parsed


def expand_all(roles: Mapping[str, frozenset[Role]]) -> dict[str, frozenset[Role]]:
    return {namespace: expand(held) for namespace, held in roles.items()}


def written_roles(roles: Mapping[str, frozenset[Role]]) -> dict[str, list[str]]:
    """The mapping as stored and shown: role names sorted, namespaces sorted."""
    return {ns: sorted(r.value for r in held) for ns, held in sorted(roles.items())}


@dataclass(frozen=True)
class Caller:
    principal: str
    # As approvers name them: "group:<name>".
    groups: tuple[str, ...] = ()
    # Roles by namespace, already expanded (`expand`); ANY_NAMESPACE applies to every one.
    roles: Mapping[str, frozenset[Role]] = field(default_factory=lambda: dict(ALL_ROLES))
    # A worker credential limited to these step types; None: any step type.
    step_types: frozenset[str] | None = None
    # The stored credential this caller presented ("" for dev mode, anonymous callers and
    # entries of an auth file).
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
