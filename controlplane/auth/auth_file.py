"""The auth file: credentials for small installations, kept in a YAML file beside the server.

```yaml
tokens:
  "sha256:<hex of sha256(token)>":          # `surefoot credentials hash` prints it
    principal: alice
    groups: [managers]
    namespaces: {default: [operator, approver]}   # "*" = every namespace
    step_types: [charge-card]                      # optional: a worker credential's limit
certificates:                # mTLS: keyed by the client certificate's subject CN
  worker-payments:
    principal: worker-payments
    namespaces: {payments: [worker]}
```

Tokens are keyed by their hash: the file can be read by whoever deploys the server without
giving away a credential.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane.auth.caller import BadRoles, Caller, expand_all, parse_roles
from controlplane.auth.tokens import is_token_hash

MAX_PRINCIPAL = 200


class AuthFileError(ValueError):
    pass


@dataclass(frozen=True)
class AuthFile:
    # sha256:<hex> of a token -> who presents it.
    tokens: dict[str, Caller] = field(default_factory=dict)
    # Subject CN of a client certificate -> who presents it.
    certificates: dict[str, Caller] = field(default_factory=dict)

    def callers(self) -> list[Caller]:
        return [*self.tokens.values(), *self.certificates.values()]


def read_auth_file(path: str) -> AuthFile:
    """The file's credentials; AuthFileError (naming the file) for anything malformed."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise AuthFileError(f"cannot read auth file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise AuthFileError(f"auth file {path}: expected a 'tokens' mapping (or 'certificates')")
    tokens = data.get("tokens")
    certificates = data.get("certificates")
    if tokens is None and certificates is None:
        raise AuthFileError(f"auth file {path}: expected a 'tokens' mapping (or 'certificates')")
    if tokens is not None and not isinstance(tokens, dict):
        raise AuthFileError(f"auth file {path}: expected a 'tokens' mapping")
    if certificates is not None and not isinstance(certificates, dict):
        raise AuthFileError(f"auth file {path}: expected a 'certificates' mapping")
    parsed = AuthFile()
    for key, entry in (tokens or {}).items():
        # A key that is not a hash may be a token itself: never repeat it in a message.
        where = f"tokens[{key}]" if is_token_hash(str(key)) else "tokens[<not a sha256 key>]"
        caller = _entry(path, where, entry, "every token needs a principal")
        if not is_token_hash(str(key)):
            raise AuthFileError(
                f"auth file {path}: token keys must be sha256:<hex> of the token, as "
                "`surefoot credentials hash` prints it (the file holds no token itself)"
            )
        parsed.tokens[str(key)] = caller
    for subject, entry in (certificates or {}).items():
        caller = _entry(
            path, f"certificates[{subject}]", entry, "every certificate needs a principal"
        )
        parsed.certificates[str(subject)] = caller
    return parsed


def _entry(path: str, where: str, entry: Any, no_principal: str) -> Caller:
    if not isinstance(entry, dict) or not entry.get("principal"):
        raise AuthFileError(f"auth file {path}: {no_principal}")
    principal = str(entry["principal"])
    if len(principal) > MAX_PRINCIPAL or not principal.isprintable():
        raise AuthFileError(f"auth file {path}: {where}: the principal is not a name")
    listed = entry.get("groups") or []
    if isinstance(listed, str):
        listed = [listed]
    try:
        roles = parse_roles(entry.get("namespaces"), f"{where}.namespaces")
    except BadRoles as exc:
        raise AuthFileError(f"auth file {path}: {exc}") from None
    step_types = entry.get("step_types")
    if step_types is not None and not isinstance(step_types, list):
        raise AuthFileError(f"auth file {path}: {where}.step_types must be a list")
    return Caller(
        principal,
        tuple(f"group:{g}" for g in listed),
        expand_all(roles),
        frozenset(str(s) for s in step_types) if step_types is not None else None,
    )
