"""An error's signature: its message with what differs between the runs of one incident taken
out, so that 4,000 failures of one outage group as one dead-letter row.

What varies from run to run in a message is an id (a UUID, `cus_123abc`, `order-8812`), a
number (an amount, a port, a status code), a hex string (a request id, a hash) or a time;
each becomes a placeholder. What stays is the wording, which is what names the failure.
The function is pure and stable: a signature is stored with each dead letter (and indexed),
so changing it changes how existing rows group until they are written again.
"""

from __future__ import annotations

import re

# The column is indexed: a bounded width keeps the index entries small.
MAX_SIGNATURE = 300

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # ISO 8601 dates and times, with or without a zone: 2026-12-06T02:26:29.123+00:00.
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        ),
        "<time>",
    ),
    # Clock times alone: 02:26:29, 02:26:29.5.
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    # UUIDs.
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<id>",
    ),
    # 0x-prefixed hex, and bare hex runs of 8 or more with at least one digit and one letter.
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    # Identifiers that mix letters and digits, joined by _ or - (cus_123abc, order-8812,
    # req_AbC9x), or letters then three digits or more (ORD12345): one placeholder each.
    # A name with a digit in it (e2e-charge, step2, v2) stays: it names a thing, not a run.
    (re.compile(r"\b[A-Za-z][A-Za-z0-9]*[_-][A-Za-z0-9_-]*\d[A-Za-z0-9_-]*\b"), "<id>"),
    (re.compile(r"\b[A-Za-z]+\d{3,}\w*\b"), "<id>"),
    # Numbers, signed or decimal, with a unit or not (503, -12.50, 30.5s, 200ms).
    (re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?=[A-Za-z%]*\b)"), "<n>"),
)
_SPACES = re.compile(r"\s+")


def error_signature(message: str) -> str:
    """`message` with ids, numbers, hex and timestamps replaced by placeholders.

    >>> error_signature("charge ch_81f2 for cus_42 failed: HTTP 503 at 2026-12-06T02:26:29Z")
    'charge <id> for <id> failed: HTTP <n> at <time>'
    """
    text = message
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return _SPACES.sub(" ", text).strip()[:MAX_SIGNATURE]
