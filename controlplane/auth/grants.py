"""What a new credential grants, checked the same way for the API and the bootstrap CLI.

`surefoot credentials create` either asks CredentialService (an admin's token) or, to make
the first admin, writes to the database itself (`--database-url`: whoever can write the
database is trusted already). Both go through `checked_grant` and `issue`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from controlplane import errors
from controlplane.auth.caller import BadRoles, Role, parse_roles
from controlplane.auth.tokens import new_token, token_hash
from controlplane.engine.definition import NAME_PATTERN
from controlplane.store import credentials as store

MAX_PRINCIPAL = 200
MAX_SUBJECT = 300
MAX_DESCRIPTION = 2000
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Grant:
    principal: str
    kind: str  # store.TOKEN or store.CERTIFICATE
    roles: dict[str, frozenset[Role]]  # as given, not expanded
    subject: str = ""
    groups: tuple[str, ...] = ()
    step_types: tuple[str, ...] | None = None
    description: str = ""


def checked_grant(
    *,
    principal: str,
    namespaces: Mapping[str, Sequence[str]],
    certificate_subject: str = "",
    groups: Sequence[str] = (),
    step_types: Sequence[str] = (),
    description: str = "",
) -> Grant:
    """The grant, or InvalidArgument naming the first field that is wrong."""
    if not principal or principal != principal.strip():
        raise errors.InvalidArgument.field("principal", "is required, without blanks around it")
    if len(principal) > MAX_PRINCIPAL or not principal.isprintable():
        raise errors.InvalidArgument.field(
            "principal", f"must be at most {MAX_PRINCIPAL} printable characters"
        )
    try:
        roles = parse_roles({ns: list(held) for ns, held in namespaces.items()})
    except BadRoles as exc:
        raise errors.InvalidArgument.field("namespaces", str(exc)) from None
    if certificate_subject and (
        len(certificate_subject) > MAX_SUBJECT or not certificate_subject.isprintable()
    ):
        raise errors.InvalidArgument.field(
            "subject", f"must be at most {MAX_SUBJECT} printable characters"
        )
    for index, group in enumerate(groups):
        if not _GROUP.fullmatch(group):
            raise errors.InvalidArgument.field(
                f"groups[{index}]", "must be 1-100 letters, digits, '.', '_' or '-'"
            )
    for index, step_type in enumerate(step_types):
        if not NAME_PATTERN.fullmatch(step_type):
            raise errors.InvalidArgument.field(f"step_types[{index}]", "is not a step type name")
    if len(description) > MAX_DESCRIPTION:
        raise errors.InvalidArgument.field(
            "description", f"is longer than {MAX_DESCRIPTION} characters"
        )
    return Grant(
        principal=principal,
        kind=store.CERTIFICATE if certificate_subject else store.TOKEN,
        roles=roles,
        subject=certificate_subject,
        groups=tuple(groups),
        step_types=tuple(step_types) or None,
        description=description,
    )


def issue(
    connection: Connection, grant: Grant, created_by: str, now: datetime
) -> tuple[store.Credential, str]:
    """Stores the credential (audited, in the caller's transaction); its token, or "" for a
    certificate. The token exists only in the answer: the database keeps its hash.

    Raises:
        AlreadyExists: an active certificate credential has this subject already.
    """
    token = new_token() if grant.kind == store.TOKEN else ""
    try:
        created = store.create(
            connection,
            principal=grant.principal,
            kind=grant.kind,
            key=token_hash(token) if token else grant.subject,
            roles=grant.roles,
            groups=list(grant.groups),
            step_types=list(grant.step_types) if grant.step_types is not None else None,
            description=grant.description,
            created_by=created_by,
            now=now,
        )
    except store.SubjectInUse:
        raise errors.AlreadyExists(
            f"an active credential already stands for certificate subject {grant.subject!r}: "
            "revoke it first"
        ) from None
    return created, token
