"""Secrets referenced by name in connector inputs: ``${secret:NAME}`` inside any string.

A workflow's input, a step's input and the run's history hold only the reference; the value
is looked up inside the connector worker, from the environment variable
``SUREFOOT_SECRET_<NAME>`` (the name upper-cased) or from a YAML file mapping names to
values (``--secrets-file``). The environment wins over the file, so that a deployment can
override one value without rewriting the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from surefoot_connectors.redaction import Redactor

ENVIRONMENT_PREFIX = "SUREFOOT_SECRET_"
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Loose on purpose: `${secret:bad-name}` must be refused, not sent to a service verbatim.
REFERENCE = re.compile(r"\$\{secret:([^}]*)\}")
REFERENCE_START = "${secret:"


class SecretsFileError(Exception):
    """The secrets file cannot be read or is not a mapping of names to values."""


class SecretNotFound(Exception):
    """An input refers to a secret this worker does not have; the message names it."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"secret {name!r} is not configured on this connector worker: set "
            f"{ENVIRONMENT_PREFIX}{name.upper()} or add {name!r} to its --secrets-file"
        )
        self.name = name


class MalformedReference(ValueError):
    """A string holds something that looks like a secret reference but is not one."""


@dataclass(frozen=True)
class Secrets:
    """The secret values a connector worker may put into inputs, by upper-cased name."""

    values: Mapping[str, str]

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, file: str | Path | None = None
    ) -> Secrets:
        """Read the secrets of `environ` (``os.environ`` by default) and of `file`, if any.

        Raises:
            SecretsFileError: If the file cannot be read, is not YAML, or is not a mapping
                of valid names to scalar values.
        """
        values = dict(read_secrets_file(file)) if file else {}
        source = os.environ if environ is None else environ
        for key, value in source.items():
            if key.startswith(ENVIRONMENT_PREFIX) and len(key) > len(ENVIRONMENT_PREFIX):
                values[key.removeprefix(ENVIRONMENT_PREFIX).upper()] = value
        return cls(values)

    def redactor(self) -> Redactor:
        """A redactor of every value held here."""
        return Redactor(self.values.values())

    def resolve(self, value: Any) -> Any:
        """A copy of a JSON-like value with the references in its strings replaced.

        Dictionary keys are left alone: a secret belongs in a value (a header's, a DSN).

        Raises:
            SecretNotFound: For the first reference to a secret that is not configured.
            MalformedReference: For ``${secret:`` not followed by a valid name and ``}``.
        """
        if isinstance(value, str):
            return self._resolve_text(value)
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def _resolve_text(self, text: str) -> str:
        if REFERENCE_START not in text:
            return text

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if not NAME_PATTERN.match(name):
                raise MalformedReference(
                    f"{match.group(0)!r} is not a secret reference: a name is letters, digits "
                    "and underscores, not starting with a digit"
                )
            found = self.values.get(name.upper())
            if found is None:
                raise SecretNotFound(name)
            return found

        resolved = REFERENCE.sub(substitute, text)
        leftover = REFERENCE.sub("", text)
        if REFERENCE_START in leftover:
            raise MalformedReference(f"{text!r} has a secret reference without its closing '}}'")
        return resolved


def read_secrets_file(path: str | Path) -> dict[str, str]:
    """The name → value mapping of a YAML secrets file, names upper-cased.

    Raises:
        SecretsFileError: Says what is wrong, never a value.
    """
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SecretsFileError(f"cannot read secrets file {path}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        # The parser's message quotes the offending line, which may be a secret.
        raise SecretsFileError(f"secrets file {path} is not valid YAML") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise SecretsFileError(f"secrets file {path} must be a mapping of names to values")
    secrets: dict[str, str] = {}
    for name, value in document.items():
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise SecretsFileError(
                f"secrets file {path}: {name!r} is not a secret name (letters, digits and "
                "underscores, not starting with a digit)"
            )
        if not isinstance(value, str):
            # YAML reads `0123` as 123 and `yes` as true: a secret must be a quoted string,
            # or it would silently change.
            raise SecretsFileError(
                f"secrets file {path}: the value of {name!r} must be a string (quote it)"
            )
        if name.upper() in secrets:
            raise SecretsFileError(
                f"secrets file {path}: {name!r} is given twice (names ignore case)"
            )
        secrets[name.upper()] = value
    return secrets
