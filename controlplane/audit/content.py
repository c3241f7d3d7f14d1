"""The hash of exactly what an approver is shown (surefoot.v1.Approval.content_hash).

    sha256("surefoot.approval.v1" || id || title || shown.encoding || shown.data)

each field as UTF-8 bytes (shown.data as is) preceded by its length as 8 big-endian bytes.
The control plane serves it with every approval; a client computes it over what it displayed
and sends it with the decision, so a decision is refused unless it was made on what the
approval shows, and its history event records which content was decided on.
"""

from __future__ import annotations

from hashlib import sha256

from surefoot.v1 import approval_pb2

_DOMAIN = b"surefoot.approval.v1"
# How the control plane serves the stored JSON of an approval's `shown` (api/convert.py).
STORED_ENCODING = "json/plain"


def content_hash(approval_id: str, title: str, encoding: str, data: bytes) -> str:
    parts = [_DOMAIN]
    for raw in (approval_id.encode(), title.encode(), encoding.encode(), data):
        parts.append(len(raw).to_bytes(8, "big"))
        parts.append(raw)
    return sha256(b"".join(parts)).hexdigest()


def stored_content_hash(approval_id: str, title: str, shown_json: str) -> str:
    """The hash of an approvals row as the API serves it."""
    return content_hash(approval_id, title, STORED_ENCODING, shown_json.encode())


def shown_hash(approval: approval_pb2.Approval) -> str:
    """The hash of an approval message as a client received (and displayed) it."""
    return content_hash(approval.id, approval.title, approval.shown.encoding, approval.shown.data)
