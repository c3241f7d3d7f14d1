"""Conversions at the store boundary: JSON text columns and epoch seconds <-> datetimes.

JSON goes through orjson: the committer encodes every run's state and history on the hot
path, and orjson does that several times faster than the standard library.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


def dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def load_json(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def to_epoch(value: datetime) -> float:
    return value.timestamp()


def optional_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else to_datetime(epoch)
