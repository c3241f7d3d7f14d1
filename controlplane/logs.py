"""How a server logs: text for a terminal, or JSON lines for a log pipeline
(`surefoot server --log-format json`, or SUREFOOT_LOG_FORMAT=json).

A JSON line holds time (UTC, ISO 8601), level, logger and message, and run_id, node, attempt
and trace_id when the record concerns one: given by the call (`extra={"run_id": ...}`) or by
the code around it (`with concerning(run_id=...)`), and the exception's traceback if any.
Secrets never reach a line, whichever the format: bearer tokens, credentials in URLs, and the
values of keys that name a token, password, secret or key are masked in the message, the
traceback and every field (`redact`).
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from surefoot_worker._redaction import redact

TEXT = "text"
JSON = "json"
FORMATS = (TEXT, JSON)
FORMAT_VARIABLE = "SUREFOOT_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# What a record may say about the run it concerns, in the order a line shows them.
RUN_FIELDS = ("run_id", "node", "attempt", "trace_id")

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "surefoot_log_context", default=None
)


@contextlib.contextmanager
def concerning(**fields: Any) -> Iterator[None]:
    """Records logged inside the block concern this run (run_id, node, attempt, trace_id)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def run_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The run a record concerns, from the call's `extra` or the surrounding `concerning`."""
    found = dict(_context.get() or {})
    for name in RUN_FIELDS:
        value = getattr(record, name, None)
        if value not in (None, ""):
            found[name] = value
    return {name: found[name] for name in RUN_FIELDS if found.get(name) not in (None, "")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name, value in run_fields(record).items():
            line[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = redact(record.exc_text)
        return json.dumps(line, ensure_ascii=False, default=str)


class RedactingFormatter(logging.Formatter):
    """The text format, with secrets masked as in JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def format_from_environment() -> str:
    """SUREFOOT_LOG_FORMAT as given (checked by `log_format`, as --log-format is), else text."""
    return os.environ.get(FORMAT_VARIABLE, "").strip() or TEXT


def log_format(text: str) -> str:
    """An argparse `type`: text or json (a bad value is a usage error, never a silent text)."""
    value = text.strip().lower()
    if value not in FORMATS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a log format: text or json ({FORMAT_VARIABLE} too)"
        )
    return value


def configure(log_format: str = TEXT, level: int = logging.INFO) -> None:
    """Send the process's records to stderr in `log_format` (replacing what was set up)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == JSON else RedactingFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Alembic announces each of its plugins at INFO when it is imported, which now happens
    # after this: eight lines before a server's one-line startup error, none of them news.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
