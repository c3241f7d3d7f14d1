"""Who is calling: the principal comes from credentials, never from a request field.

A server started with an auth file maps bearer tokens (`authorization: Bearer <token>`
metadata) to principals and their groups. The embedded dev mode trusts the local OS user.
Without either, callers are anonymous: they may read and start runs, but not decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml

from controlplane import errors

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    principal: str
    # As approvers name them: "group:<name>".
    groups: tuple[str, ...] = ()

    @property
    def authenticated(self) -> bool:
        return self.principal != ANONYMOUS


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
