"""Conversions at the store boundary: JSON text columns and epoch seconds <-> datetimes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def load_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def to_epoch(value: datetime) -> float:
    return value.timestamp()


def optional_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else to_datetime(epoch)
