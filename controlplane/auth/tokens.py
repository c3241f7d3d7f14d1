"""Bearer tokens: made from 256 random bits, kept only as their sha256.

A token is looked up by its hash, so the server never holds a token it could leak, and a
constant-time comparison is not needed: an attacker learns nothing from how long the
lookup of a hash takes.
"""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "sha256:"
# Says what a token is when it shows up in a log or a paste, like other services' keys.
TOKEN_PREFIX = "sft_"
HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")


def new_token() -> str:
    """A fresh token: 32 random bytes, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """`sha256:<hex>` of the token as it is sent (UTF-8)."""
    return PREFIX + hashlib.sha256(token.encode()).hexdigest()


def is_token_hash(text: str) -> bool:
    return bool(HASH_PATTERN.fullmatch(text))
