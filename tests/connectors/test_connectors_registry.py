"""The registry of connectors, secrets resolution and redaction, without any service."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from surefoot.v1 import common_pb2
from surefoot_connectors import all_connectors, connector_named, connector_steps
from surefoot_connectors.redaction import Redactor, redact_logs
from surefoot_connectors.secrets import (
    MalformedReference,
    SecretNotFound,
    Secrets,
    SecretsFileError,
)
from surefoot_connectors.steps import ConnectorRuntime

from tests.connectors.outcome_plane import OutcomeLedger

SHIPPED = ["surefoot.ai", "surefoot.http", "surefoot.postgres", "surefoot.smtp", "surefoot.webhook"]


def test_every_connector_module_is_found_with_a_valid_schema() -> None:
    connectors = all_connectors()
    assert [c.name for c in connectors] == SHIPPED
    for connector in connectors:
        Draft202012Validator.check_schema(connector.input_schema)
        assert connector.version == "1"
        assert connector.summary and "\n" not in connector.summary
        assert connector.idempotency == "key"
        assert connector.input_schema["additionalProperties"] is False
        assert set(connector.input_schema["required"]) <= set(connector.input_schema["properties"])
    assert connector_named("surefoot.smtp").name == "surefoot.smtp"
    with pytest.raises(KeyError):
        connector_named("surefoot.ftp")


def test_the_steps_declare_what_the_registry_says(sqlite_outcomes: OutcomeLedger) -> None:
    steps = connector_steps(ConnectorRuntime(Secrets({}), sqlite_outcomes.client))
    assert [s.key for s in steps] == [(name, "1") for name in SHIPPED]
    for step, connector in zip(steps, all_connectors(), strict=True):
        declaration = step.to_proto()
        assert declaration.idempotency == common_pb2.IDEMPOTENCY_KEY
        assert declaration.retry.max_attempts == connector.retry.max_attempts
        assert declaration.description == connector.summary
        assert not step.is_async  # blocking clients: the SDK runs them in its thread pool


def test_references_resolve_in_every_string_and_only_there() -> None:
    secrets = Secrets({"API_TOKEN": "t0k", "DB": "pw"})
    value = {
        "url": "https://x.test/?key=${secret:api_token}",
        "headers": {"Authorization": "Bearer ${secret:API_TOKEN}"},
        "list": ["${secret:db}:${secret:db}", 3, None, True],
        "${secret:db}": "keys stay as they are",
    }
    assert secrets.resolve(value) == {
        "url": "https://x.test/?key=t0k",
        "headers": {"Authorization": "Bearer t0k"},
        "list": ["pw:pw", 3, None, True],
        "${secret:db}": "keys stay as they are",
    }
    with pytest.raises(SecretNotFound) as missing:
        secrets.resolve({"a": "${secret:other}"})
    assert missing.value.name == "other" and "SUREFOOT_SECRET_OTHER" in str(missing.value)
    for malformed in ("${secret:}", "${secret:a-b}", "${secret:api_token", "${secret:1x}"):
        with pytest.raises(MalformedReference):
            secrets.resolve(malformed)
    assert secrets.resolve("$ {secret:x} and ${other:x}") == "$ {secret:x} and ${other:x}"


def test_secrets_come_from_the_environment_and_a_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text('api_token: "from-file"\nsmtp_password: "0123"\n')
    secrets = Secrets.load(
        {"SUREFOOT_SECRET_API_TOKEN": "from-env", "SUREFOOT_SECRET_": "x", "HOME": "/"}, path
    )
    assert secrets.values == {"API_TOKEN": "from-env", "SMTP_PASSWORD": "0123"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("token: 0123\n", "must be a string (quote it)"),
        ("bad-name: 'x'\n", "is not a secret name"),
        ("a: 'x'\nA: 'y'\n", "given twice"),
        ("token: 'sk-live-1\n  broken: [\n", "is not valid YAML"),
    ],
)
def test_a_bad_secrets_file_is_refused_without_quoting_values(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(content)
    with pytest.raises(SecretsFileError) as raised:
        Secrets.load({}, path)
    assert problem in str(raised.value)
    assert "sk-live" not in str(raised.value)
    with pytest.raises(SecretsFileError, match="cannot read secrets file"):
        Secrets.load({}, tmp_path / "missing.yaml")


def test_redaction_hides_every_form_a_value_comes_back_in() -> None:
    redactor = Redactor(["s3cr3t/+value", "", "token"])
    assert redactor.text("a s3cr3t/+value b") == "a *** b"
    assert redactor.text("url?k=s3cr3t%2F%2Bvalue") == "url?k=***"
    assert redactor.text("form k=s3cr3t%2F%2Bvalue") == "form k=***"
    assert redactor.value({"token": ["token", 1, {"x": "a token"}]}) == {
        "***": ["***", 1, {"x": "a ***"}]
    }
    assert Redactor([]).value({"a": "b"}) == {"a": "b"}


def test_redaction_hides_the_forms_exception_messages_quote() -> None:
    """Error messages are put on one line, and libraries quote values with repr()."""
    pem = "-----BEGIN KEY-----\nMIIEvQ\n-----END KEY-----"
    redactor = Redactor([pem, "pässwörd'\x01"])
    assert redactor.text("bad key: -----BEGIN KEY----- MIIEvQ -----END KEY----- (400)") == (
        "bad key: *** (400)"
    )
    header = "Bearer pässwörd'\x01"  # a quote in it: repr() quotes it with "
    assert redactor.text(f"Illegal header value {header.encode()!r}") == (
        'Illegal header value b"Bearer ***"'
    )
    assert redactor.text(f"{header!r} is not valid") == '"Bearer ***" is not valid'
    assert redactor.finds(f"x{pem}y") and not redactor.finds("MIIEvQ")
    assert redactor.longest_bytes >= len(pem.encode())  # its URL-quoted form is longer


def test_log_lines_and_tracebacks_are_redacted() -> None:
    logger = logging.getLogger("surefoot.test.redaction")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    try:
        redact_logs(Redactor(["hunter2"]), logger)
        redact_logs(Redactor(["hunter2"]), logger)  # idempotent: wrapped once
        logger.warning("password is %s", "hunter2")
        try:
            raise RuntimeError("boom hunter2")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "hunter2" not in text
    assert "WARNING password is ***" in text and "RuntimeError: boom ***" in text
