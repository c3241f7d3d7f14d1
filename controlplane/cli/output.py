"""Rendering for the terminal (aligned tables, key: value blocks) and for `--json`."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import common_pb2

JSON_ENCODING = "json/plain"
DATA_WIDTH = 120


def message_dict(message: Message) -> dict[str, Any]:
    """A message as the protobuf JSON mapping, with the .proto field names.

    Fields left at their default are printed too, so that a script reading `--json` output
    finds the same keys whatever the values (`created: false` rather than no key at all).
    """
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def print_json(document: Any) -> None:
    """Prints one JSON document on stdout: the whole machine output of a command."""
    if isinstance(document, Message):
        document = message_dict(document)
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def table(headers: Sequence[str] | None, rows: Iterable[Sequence[object]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; the last one is not padded."""
    cells = [[_cell(value) for value in row] for row in rows]
    if headers is not None:
        cells.insert(0, [h.upper() for h in headers])
    if not cells:
        return []
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(cells[0]))]
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + row[-1:]
        lines.append("  ".join(padded).rstrip())
    return lines


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Prints a table; nothing at all (not even the header) when there are no rows."""
    rows = list(rows)
    for line in table(headers, rows) if rows else []:
        print(line)


def print_fields(fields: Iterable[tuple[str, object]]) -> None:
    """A `key: value` block with aligned values; empty values are left out."""
    present = [(key, _cell(value)) for key, value in fields if _cell(value)]
    width = max((len(key) for key, _ in present), default=0) + 1
    for key, value in present:
        print(f"{key + ':':<{width}} {value}")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def timestamp(ts: Timestamp, *, precise: bool = False) -> str:
    """ISO-8601 in UTC (`2026-11-01T09:30:00Z`); empty when the field is unset."""
    if ts.seconds == 0 and ts.nanos == 0:
        return ""
    when = ts.ToDatetime(tzinfo=datetime.UTC)
    text = when.isoformat(timespec="milliseconds" if precise else "seconds")
    return text.replace("+00:00", "Z")


def enum_name(enum: Any, value: int) -> str:
    """`RUN_STATUS_NEEDS_ATTENTION` -> `NEEDS_ATTENTION`; numbers this CLI predates stay numbers."""
    descriptor = enum.DESCRIPTOR
    prefix = descriptor.values_by_number[0].name.removesuffix("UNSPECIFIED")
    known = descriptor.values_by_number.get(value)
    return known.name.removeprefix(prefix) if known is not None else str(value)


def enum_value(enum: Any, text: str) -> int:
    """The inverse of `enum_name`, forgiving about case, dashes and the prefix.

    Raises:
        ValueError: no such value; the message lists the accepted names.
    """
    descriptor = enum.DESCRIPTOR
    prefix = descriptor.values_by_number[0].name.removesuffix("UNSPECIFIED")
    name = text.strip().upper().replace("-", "_")
    for candidate in (name, prefix + name):
        value = descriptor.values_by_name.get(candidate)
        if value is not None and value.number != 0:
            return int(value.number)
    names = ", ".join(enum_name(enum, v.number).lower() for v in descriptor.values if v.number)
    raise ValueError(f"{text!r} is not one of: {names}")


def payload_text(payload: common_pb2.Payload, limit: int | None = DATA_WIDTH) -> str:
    """A payload as compact JSON when it is JSON, else a short description of its bytes."""
    if not payload.data and not payload.encoding:
        return ""
    if payload.encoding in ("", JSON_ENCODING):
        try:
            text = json.dumps(json.loads(payload.data), separators=(",", ":"), ensure_ascii=False)
        except ValueError:
            text = f"<invalid JSON, {len(payload.data)} bytes>"
    else:
        text = f"<{payload.encoding}, {len(payload.data)} bytes>"
    return truncate(text, limit)


def truncate(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def short_hash(content_hash: str) -> str:
    """`sha256:` and the first 12 hex digits: enough to tell versions apart at a glance."""
    digest = content_hash.removeprefix("sha256:")
    return f"sha256:{digest[:12]}" if digest else ""


def print_group_help(parser: argparse.ArgumentParser) -> int:
    """`surefoot runs` without a command: the group's help on stderr, and a usage exit code."""
    parser.print_help(sys.stderr)
    return 2
