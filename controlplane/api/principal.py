"""Who is calling: the principal comes from credentials, never from a request field.

The contract lives in `controlplane.auth`; this module keeps the names the servicers import.
"""

from __future__ import annotations

from controlplane.auth.auth_file import AuthFileError
from controlplane.auth.authenticator import Authenticator, principal_of
from controlplane.auth.caller import ANONYMOUS, ANY_NAMESPACE, Caller, Role, expand

__all__ = [
    "ANONYMOUS",
    "ANY_NAMESPACE",
    "AuthFileError",
    "Authenticator",
    "Caller",
    "Role",
    "expand",
    "principal_of",
]
