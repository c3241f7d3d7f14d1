"""Secrets masked out of text that leaves a process: log lines, span statuses and attributes.

The control plane's logs and spans and the worker's handler spans use the same rules, so an
upstream's reply quoting a credential in a step's error is masked wherever it is shown.
"""

from __future__ import annotations

import re

MASK = "***"

_KEY_SHAPES = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})\b"
)
_SECRETS = (
    # Authorization: Bearer <token>, Basic <credentials>.
    (re.compile(r"\b([Bb]earer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + MASK),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]+@"), r"\1:" + MASK + "@"),
    # token=..., "password": "...", api_key: ...
    (
        re.compile(
            r"""(?ix)
            (["']?[a-z0-9_.-]*(?:token|password|passwd|secret|api[_-]?key|credential)s?["']?
            \s*[:=]\s*)
            (["']?)[^\s"',;&})\]]+\2"""
        ),
        r"\1\2" + MASK + r"\2",
    ),
    # Keys of well-known shapes, wherever they stand: sk-..., ghp_..., AKIA...
    (_KEY_SHAPES, MASK),
)


def redact(text: str) -> str:
    """`text` with every secret it shows masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text
