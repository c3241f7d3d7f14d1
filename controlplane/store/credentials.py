"""Stored credentials and the audit log of their changes.

A token credential keeps only `sha256:<hex>` of its token; a certificate credential keeps
the subject CN its client certificate must carry. Creating and revoking write their audit
row in the same transaction (law 1): a change the audit does not show did not happen.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, insert, or_, select, update

from controlplane.auth.caller import Caller, Role, expand_all, parse_roles, written_roles
from controlplane.store import run_queries
from controlplane.store.schema import audit_log, credentials

TOKEN = "token"
CERTIFICATE = "certificate"
KINDS = (TOKEN, CERTIFICATE)


class SubjectInUse(Exception):
    """An active certificate credential already names this subject."""


@dataclass(frozen=True)
class Credential:
    id: str
    principal: str
    kind: str
    subject: str
    roles: dict[str, list[str]]
    groups: list[str]
    step_types: list[str] | None
    description: str
    created_by: str
    created_at: datetime
    revoked_by: str
    revoked_at: datetime | None

    @property
    def namespaces(self) -> set[str]:
        return set(self.roles)

    def caller(self) -> Caller:
        """Who presents this credential."""
        return Caller(
            self.principal,
            tuple(f"group:{g}" for g in self.groups),
            expand_all(parse_roles(self.roles)),
            frozenset(self.step_types) if self.step_types is not None else None,
            self.id,
        )


def create(
    connection: Connection,
    *,
    principal: str,
    kind: str,
    key: str,
    roles: Mapping[str, frozenset[Role]],
    groups: list[str],
    step_types: list[str] | None,
    description: str,
    created_by: str,
    now: datetime,
) -> Credential:
    """A new credential (`key`: the token's hash or the certificate's subject), audited.

    Raises:
        SubjectInUse: an active certificate credential already has this subject.
    """
    if kind == CERTIFICATE and find_active(connection, CERTIFICATE, key) is not None:
        raise SubjectInUse(key)
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "principal": principal,
        "kind": kind,
        "secret_sha256": key if kind == TOKEN else None,
        "subject": key if kind == CERTIFICATE else None,
        "roles": orjson.dumps(written_roles(roles)).decode(),
        "groups": orjson.dumps(sorted(set(groups))).decode(),
        "step_types": (
            orjson.dumps(sorted(set(step_types))).decode() if step_types is not None else None
        ),
        "description": description,
        "created_by": created_by,
        "created_at": now,
    }
    connection.execute(insert(credentials).values(values))
    created = _credential(values)
    audit(connection, now, created_by, "credential.create", _details(created))
    return created


def find_active(connection: Connection, kind: str, key: str) -> Credential | None:
    """The unrevoked credential of this token hash or certificate subject, if any."""
    column = credentials.c.secret_sha256 if kind == TOKEN else credentials.c.subject
    row = connection.execute(
        select(credentials).where(
            and_(column == key, credentials.c.kind == kind, credentials.c.revoked_at.is_(None))
        )
    ).first()
    return _credential(row._mapping) if row is not None else None


def get(connection: Connection, credential_id: str) -> Credential | None:
    row = connection.execute(select(credentials).where(credentials.c.id == credential_id)).first()
    return _credential(row._mapping) if row is not None else None


class BadPageToken(ValueError):
    """A page token that is not one `page` made."""


def page(
    connection: Connection,
    *,
    include_revoked: bool,
    shown: Callable[[Credential], bool],
    page_size: int,
    page_token: str = "",
    batch: int = 500,
) -> tuple[list[Credential], str]:
    """A page of the credentials `shown` keeps, oldest first, and the next page's token
    ("" after the last).

    Who sees which credential is decided in Python (`shown`: the caller's admin namespaces,
    the namespace asked for), so rows are read in batches after the token's position until
    a page and one more are kept (`batch` rows a statement: most installations hold fewer
    credentials); the token is the position of the page's last credential.

    Raises:
        BadPageToken: for a token `page` did not make.
    """
    after = decode_page_token(page_token) if page_token else None
    kept: list[Credential] = []
    while len(kept) <= page_size:
        query = select(credentials).order_by(credentials.c.created_at, credentials.c.id)
        if not include_revoked:
            query = query.where(credentials.c.revoked_at.is_(None))
        if after is not None:
            created_at, credential_id = after
            query = query.where(
                or_(
                    credentials.c.created_at > created_at,
                    and_(credentials.c.created_at == created_at, credentials.c.id > credential_id),
                )
            )
        rows = list(connection.execute(query.limit(batch)))
        for row in rows:
            found = _credential(row._mapping)
            after = (found.created_at, found.id)
            if shown(found):
                kept.append(found)
        if len(rows) < batch:
            break
    if len(kept) <= page_size:
        return kept, ""
    last = kept[page_size - 1]
    return kept[:page_size], encode_page_token(last.created_at, last.id)


# Names the list a token belongs to, so that another list's token (ListRuns' has the same
# shape) is refused instead of read as a position among credentials.
_TOKEN_LIST = "credentials"


def encode_page_token(created_at: datetime, credential_id: str) -> str:
    return run_queries.encode_page_token(created_at, credential_id, list_name=_TOKEN_LIST)


def decode_page_token(token: str) -> tuple[datetime, str]:
    """(created_at, id) of the credential a token follows.

    Raises:
        BadPageToken: for a token `encode_page_token` did not make.
    """
    try:
        return run_queries.decode_page_token(token, list_name=_TOKEN_LIST)
    except run_queries.BadPageToken as exc:
        raise BadPageToken("is not a token of this list") from exc


def revoke(
    connection: Connection, credential: Credential, revoked_by: str, now: datetime
) -> tuple[Credential, bool]:
    """The credential revoked (audited); (it, False) if it already was."""
    changed = connection.execute(
        update(credentials)
        .where(and_(credentials.c.id == credential.id, credentials.c.revoked_at.is_(None)))
        .values(revoked_by=revoked_by, revoked_at=now)
    ).rowcount
    after = get(connection, credential.id)
    assert after is not None
    if changed:
        audit(connection, now, revoked_by, "credential.revoke", _details(after))
    return after, bool(changed)


def groups_of(connection: Connection, principal: str) -> set[str]:
    """The groups ("group:<name>") the principal's active credentials give it."""
    rows = connection.execute(
        select(credentials.c.groups).where(
            and_(credentials.c.principal == principal, credentials.c.revoked_at.is_(None))
        )
    )
    return {f"group:{g}" for (text,) in rows for g in orjson.loads(text)}


def audit(
    connection: Connection, now: datetime, principal: str, action: str, details: dict[str, Any]
) -> None:
    """Appends one audit row; call it in the transaction of the change it records."""
    connection.execute(
        insert(audit_log).values(
            time=now, principal=principal, action=action, details=orjson.dumps(details).decode()
        )
    )


def _details(credential: Credential) -> dict[str, Any]:
    # What was granted or taken away; the token's hash is not a secret, but it is not
    # needed to tell credentials apart either: the id is.
    return {
        "credential_id": credential.id,
        "principal": credential.principal,
        "kind": credential.kind,
        "subject": credential.subject,
        "roles": credential.roles,
        "step_types": credential.step_types,
    }


def _credential(row: Mapping[Any, Any]) -> Credential:
    step_types = row["step_types"]
    return Credential(
        id=row["id"],
        principal=row["principal"],
        kind=row["kind"],
        subject=row["subject"] or "",
        roles=orjson.loads(row["roles"]),
        groups=orjson.loads(row["groups"]),
        step_types=orjson.loads(step_types) if step_types is not None else None,
        description=row["description"] or "",
        created_by=row["created_by"],
        created_at=row["created_at"],
        revoked_by=row.get("revoked_by") or "",
        revoked_at=row.get("revoked_at"),
    )
