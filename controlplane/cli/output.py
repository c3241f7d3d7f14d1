"""Rendering for the terminal (aligned tables, key: value blocks) and for `-o json|yaml`.

The output format is decided here and only here: `add_output_arguments` gives every read
command `-o/--output` (and `--json`, its older spelling), `select_format` records the choice
once per process, and `print_document`, `print_stream_item` and `print_table` honour it, so
a command module never tests the format beyond "machine output or not" (`args.json`).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import common_pb2

JSON_ENCODING = "json/plain"
DATA_WIDTH = 120

# `table` is for people, `wide` adds the columns a terminal has no room for by default,
# `json` and `yaml` are one document for scripts (the protobuf JSON mapping either way).
FORMATS = ("table", "wide", "json", "yaml")
MACHINE_FORMATS = ("json", "yaml")
_selected = "table"  # set once per process by `select_format`, from the parsed arguments


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """-o/--output FORMAT and --json (the same as `-o json`, kept for existing scripts).

    Both set `args.output` and `args.json` (machine output or not), the one flag the command
    modules branch on; the rest of the difference between formats is decided here.
    """
    parser.set_defaults(output="table", json=False)
    if "--output" in parser._option_string_actions:
        # `deadletters skip --output JSON` (a write whose --output is the step's output)
        # keeps --json only, rather than an -o that means something else than --output.
        parser.add_argument(
            "--json", action=_OutputFormat, nargs=0, const="json", help="print JSON"
        )
        return
    parser.add_argument(
        "-o",
        "--output",
        action=_OutputFormat,
        choices=FORMATS,
        metavar="FORMAT",
        help="output format: table (default), wide (more columns), json or yaml (one "
        "document, payloads as their JSON value)",
    )
    parser.add_argument(
        "--json", action=_OutputFormat, nargs=0, const="json", help="the same as -o json"
    )


class _OutputFormat(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        chosen = self.const if self.const is not None else values
        namespace.output = chosen
        namespace.json = chosen in MACHINE_FORMATS


def select_format(args: argparse.Namespace) -> None:
    """Records the output format of the command about to run (table when it has no -o)."""
    global _selected
    chosen = getattr(args, "output", None)
    _selected = chosen if chosen in FORMATS else "table"


def selected_format() -> str:
    return _selected


def is_wide() -> bool:
    return _selected == "wide"


def message_dict(message: Message) -> dict[str, Any]:
    """A message as the protobuf JSON mapping, with the .proto field names.

    Fields left at their default are printed too, so that a script reading `--json` output
    finds the same keys whatever the values (`created: false` rather than no key at all).
    Payloads are replaced by their decoded value (see `payload_value`): base64 of JSON is
    what the wire carries, not what anyone wants to read.
    """
    document = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _decode_payloads(message, document)
    return document


def payload_value(payload: common_pb2.Payload) -> Any:
    """A payload as a JSON value: the decoded document when it is JSON, null when empty.

    Any other encoding (or bytes that are not the JSON they claim to be) stays bytes, and
    says so: `{"encoding": ..., "base64": ...}`, so that no value is silently reinterpreted.
    """
    if not payload.data and not payload.encoding:
        return None
    if payload.encoding in ("", JSON_ENCODING):
        try:
            return json.loads(payload.data)
        except ValueError:
            return _undecoded(payload, "not valid JSON")
    return _undecoded(payload)


def _undecoded(payload: common_pb2.Payload, error: str = "") -> dict[str, str]:
    found = {
        "encoding": payload.encoding or JSON_ENCODING,
        "base64": base64.b64encode(payload.data).decode("ascii"),
    }
    return found | ({"error": error} if error else {})


def _decode_payloads(message: Message, document: dict[str, Any]) -> None:
    """Replaces, in place, each Payload of `message` in its JSON mapping `document`."""
    for field in message.DESCRIPTOR.fields:
        kind = field.message_type
        if kind is None:
            continue
        if field.name not in document:
            if kind.full_name == common_pb2.Payload.DESCRIPTOR.full_name and not field.is_repeated:
                # An unset payload is null, so that `output` is a key whatever the run did.
                document[field.name] = None
            continue
        value = getattr(message, field.name)
        if kind.GetOptions().map_entry:
            if kind.fields_by_name["value"].message_type is not None:
                entries = document[field.name]
                for key, item in value.items():
                    entries[str(key)] = _decoded(item, entries[str(key)])
        elif field.is_repeated:
            document[field.name] = [
                _decoded(item, doc) for item, doc in zip(value, document[field.name], strict=True)
            ]
        else:
            document[field.name] = _decoded(value, document[field.name])


def _decoded(message: Message, document: Any) -> Any:
    if isinstance(message, common_pb2.Payload):
        return payload_value(message)
    # Well-known types (Timestamp, Duration, Struct) have JSON forms of their own.
    if isinstance(document, dict) and not message.DESCRIPTOR.full_name.startswith("google."):
        _decode_payloads(message, document)
    return document


def print_document(document: Any) -> None:
    """Prints the whole machine output of a command: one JSON or YAML document on stdout."""
    if isinstance(document, Message):
        document = message_dict(document)
    if _selected == "yaml":
        sys.stdout.write(_yaml(document))
    else:
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


# The name every command module already uses; with -o yaml it prints YAML.
print_json = print_document


def print_stream_item(document: Any) -> None:
    """One message of a stream (a watch): a line of JSON (JSON Lines), or a YAML document
    opened by `---`, flushed at once so that a reader sees it as it happens."""
    if isinstance(document, Message):
        document = message_dict(document)
    if _selected == "yaml":
        sys.stdout.write("---\n" + _yaml(document))
    else:
        sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _yaml(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=DATA_WIDTH)


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


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, wide_from: int | None = None
) -> None:
    """Prints a table; nothing at all (not even the header) when there are no rows.

    Columns from `wide_from` on are shown with `-o wide` only: a command lists every
    column once and this decides how many a terminal gets.
    """
    rows = list(rows)
    if wide_from is not None and not is_wide():
        headers = headers[:wide_from]
        rows = [row[:wide_from] for row in rows]
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
