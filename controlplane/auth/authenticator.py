"""From a call to its caller: bearer token, client certificate, dev mode or `--no-auth`.

Where credentials come from:
- the auth file (hashed tokens, certificate subjects), read once at start;
- the database (credentials made through CredentialService or `surefoot credentials
  create --database-url`), looked up by the token's hash or the certificate's subject CN and
  remembered for at most `cache_seconds` (1 s), so that a revocation holds within a second on
  every control plane sharing the database.

A credential that is presented and not known (wrong, revoked) is UNAUTHENTICATED, whatever
the mode: it is never taken for an anonymous call. Without a credential, the caller is the
local OS user in dev mode, anonymous with every role on a `--no-auth` server, and refused
everywhere else.
"""

from __future__ import annotations

import asyncio
import contextvars
import time

import grpc
from sqlalchemy import Connection, Engine

from controlplane import errors
from controlplane.auth.auth_file import AuthFile, read_auth_file
from controlplane.auth.caller import ANONYMOUS, Caller
from controlplane.auth.tokens import token_hash

# How long a database lookup is trusted: the bound on how late a revocation takes effect.
CACHE_SECONDS = 1.0
# A flood of made-up tokens must not grow the cache without bound.
_CACHE_LIMIT = 10_000

# The caller of the call being served, once the access check has found it: the handlers
# below it ask again (for the principal to record) without a second lookup.
_CURRENT: contextvars.ContextVar[tuple[object, Caller] | None] = contextvars.ContextVar(
    "surefoot_caller", default=None
)


class Authenticator:
    """Say who calls. Build it with one of `required`, `dev` or `open_access`."""

    def __init__(
        self,
        file: AuthFile | None = None,
        engine: Engine | None = None,
        *,
        local_user: str = "",
        anonymous_allowed: bool = False,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._file = file or AuthFile()
        self._engine = engine
        self._local_user = local_user
        self._anonymous_allowed = anonymous_allowed
        # Who a call without a credential is, where that is allowed (dev mode, --no-auth):
        # made once, it is the same for every call.
        self._trusted: Caller | None = (
            Caller(local_user) if local_user else Caller(ANONYMOUS) if anonymous_allowed else None
        )
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, Caller | None]] = {}

    @classmethod
    def required(cls, engine: Engine | None, auth_file: str | None = None) -> Authenticator:
        """Every call needs a credential (`surefoot server`)."""
        return cls(read_auth_file(auth_file) if auth_file else None, engine)

    @classmethod
    def dev(cls, local_user: str, engine: Engine | None = None) -> Authenticator:
        """Calls without a credential act as `local_user`, with every role (`surefoot dev`)."""
        return cls(None, engine, local_user=local_user)

    @classmethod
    def open_access(
        cls, engine: Engine | None = None, auth_file: str | None = None
    ) -> Authenticator:
        """Calls without a credential are anonymous, with every role (`--no-auth`)."""
        return cls(read_auth_file(auth_file) if auth_file else None, engine, anonymous_allowed=True)

    @property
    def requires_credentials(self) -> bool:
        return not (self._local_user or self._anonymous_allowed)

    @property
    def trusted(self) -> Caller | None:
        """Who a call without a credential is (dev mode, --no-auth); None where one is needed."""
        return self._trusted

    async def caller(self, context: grpc.aio.ServicerContext) -> Caller:
        """Who calls; Unauthenticated for an unknown credential, or none where one is needed."""
        current = _CURRENT.get()
        if current is not None and current[0] is context:
            return current[1]
        return await self.identify(context)

    async def identify(self, context: grpc.aio.ServicerContext) -> Caller:
        metadata = context.invocation_metadata() or ()
        header = next((str(v) for k, v in metadata if k == "authorization"), None)
        if header is not None:
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise errors.Unauthenticated("authorization metadata must be `Bearer <token>`")
            digest = token_hash(token)
            found = self._file.tokens.get(digest) or await self._stored("token", digest)
            if found is None:
                raise errors.Unauthenticated("unknown or revoked bearer token")
            return found
        subject = certificate_subject(context)
        if subject:
            found = self._file.certificates.get(subject) or await self._stored(
                "certificate", subject
            )
            if found is not None:
                return found
            if self.requires_credentials:
                raise errors.Unauthenticated(
                    f"no credential is registered for the client certificate {subject!r}"
                )
        if self._trusted is not None:
            return self._trusted
        raise errors.Unauthenticated(
            "this server requires a credential: a bearer token (authorization metadata) "
            "or a client certificate"
        )

    async def _stored(self, kind: str, key: str) -> Caller | None:
        if self._engine is None:
            return None
        now = time.monotonic()
        cached = self._cache.get((kind, key))
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await asyncio.to_thread(self._lookup, kind, key)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[(kind, key)] = (now + self._cache_seconds, found)
        return found

    def _lookup(self, kind: str, key: str) -> Caller | None:
        from controlplane.store import credentials
        from controlplane.store.database import reader

        assert self._engine is not None
        with reader(self._engine).connect() as connection:
            found = credentials.find_active(connection, kind, key)
        return found.caller() if found is not None else None

    def forget(self) -> None:
        """Drop what was looked up: a change made by this process holds at once here."""
        self._cache.clear()

    async def acting_principal(self, context: grpc.aio.ServicerContext) -> str:
        """The name history records for the caller: authenticated, or anonymous@peer."""
        caller = await self.caller(context)
        return caller.principal if caller.authenticated else principal_of(context)

    def identities(self, principal: str, connection: Connection | None = None) -> tuple[str, ...]:
        """The principal and the groups its credentials give it: who it may decide as.

        With `connection`, the groups of its stored credentials count too.
        """
        groups = {
            g
            for caller in self._file.callers()
            if caller.principal == principal
            for g in caller.groups
        }
        if connection is not None:
            from controlplane.store import credentials

            groups |= credentials.groups_of(connection, principal)
        return (principal, *sorted(groups))


class serving:
    """Within it, `Authenticator.caller(context)` answers `caller` without a lookup.

    A class rather than a generator-based context manager: it is entered on every call.
    """

    __slots__ = ("_value", "_token")

    def __init__(self, context: grpc.aio.ServicerContext, caller: Caller) -> None:
        self._value = (context, caller)

    def __enter__(self) -> None:
        self._token = _CURRENT.set(self._value)

    def __exit__(self, *exc_info: object) -> None:
        try:
            _CURRENT.reset(self._token)
        except ValueError:  # a stream finished from another context: nothing to undo there
            _CURRENT.set(None)


def certificate_subject(context: grpc.aio.ServicerContext) -> str:
    """The subject CN of the client certificate the TLS layer verified, or ""."""
    try:
        auth = context.auth_context() or {}
    except Exception:  # noqa: BLE001 - a plaintext call may have no auth context at all
        return ""
    names = auth.get("x509_common_name") or ()
    for name in names:
        return name.decode(errors="replace") if isinstance(name, bytes) else str(name)
    return ""


def principal_of(context: grpc.aio.ServicerContext) -> str:
    """A label for history when no authenticated caller is needed."""
    return f"{ANONYMOUS}@{context.peer()}"
