"""Hiding secret values from what a connector returns, raises and logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"


class Redactor:
    """Replaces every known secret value by ``***`` in text and in JSON-like values.

    Every secret the worker knows is hidden, not only those the current input refers to:
    a service may echo a credential it received some other way, and a log line cannot say
    which task it belongs to. Besides the raw value, the forms a value takes once it is put
    in a URL, a JSON string or a Python repr are hidden too, since that is how it comes back
    in an error, and so is its form with runs of whitespace made one space, since error
    messages are put on one line that way.

    Args:
        values: The secret values; empty ones are ignored (they would match everywhere).
    """

    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            if not value:
                continue
            forms.update({value, quote(value, safe=""), quote_plus(value)})
            forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
            forms.add(json.dumps(value)[1:-1])
            # How the value shows in an exception message: an HTTP library quotes a bad
            # header as bytes (b'...'), a schema validator quotes a value with repr().
            forms.add(repr(value)[1:-1])
            forms.add(repr(value.encode("utf-8"))[2:-1])
            forms.add(" ".join(value.split()))
        forms.discard("")
        # Longest first, so that a secret containing another is hidden whole.
        self._forms = sorted(forms, key=len, reverse=True)
        self._longest_bytes = max((len(form.encode("utf-8")) for form in forms), default=0)

    def __bool__(self) -> bool:
        return bool(self._forms)

    @property
    def longest_bytes(self) -> int:
        """The UTF-8 length of the longest form hidden: how far past a cut a secret may run."""
        return self._longest_bytes

    def finds(self, text: str) -> bool:
        """Whether `text` holds a secret value, in any of the forms hidden."""
        return any(form in text for form in self._forms)

    def text(self, text: str) -> str:
        """`text` with every secret value replaced by ``***``."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value whose strings (keys included) are redacted."""
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


class RedactingFormatter(logging.Formatter):
    """Formats with another formatter, then hides secrets in the whole line and traceback."""

    def __init__(self, inner: logging.Formatter | None, redactor: Redactor) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.text(self._inner.format(record))


def redact_logs(redactor: Redactor, logger: logging.Logger | None = None) -> None:
    """Make every handler of `logger` (the root logger by default) redact secrets.

    Libraries log what they send (httpx logs each request's URL at INFO), and a URL may
    carry a secret; redacting at the handlers covers every logger that propagates to them.
    """
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter, redactor))
