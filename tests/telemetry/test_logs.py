"""`surefoot server --log-format json` (or SUREFOOT_LOG_FORMAT=json): one JSON object per line
with time, level, logger, message and the run a record concerns; secrets never, in either
format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from controlplane import logs
from tests.support.processes import ControlPlane, ProcessRegistry, run_cli
from tests.support.runs import register, start_run
from tests.support.workflows import three_steps

SECRETS = (
    "sekrit-db-password",
    "s3cr3t-bearer-value",
    "sk-live0123456789abcdefXYZ",
    "hunter2-api-token",
)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A real logger writing JSON lines into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("surefoot.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_json_line_says_when_what_and_which_run(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = captured
    logger.info("plain %s", "news")
    logger.warning("attempt lost", extra={"run_id": "r-1", "node": "charge", "attempt": 2})
    with logs.concerning(run_id="r-2", trace_id="ab" * 16):
        logger.error("inside", extra={"node": "ship"})
    plain, lost, inside = lines(buffer)
    assert set(plain) == {"time", "level", "logger", "message"}
    assert plain["level"] == "INFO"
    assert plain["logger"] == "surefoot.test-logs"
    assert plain["message"] == "plain news"
    assert plain["time"].endswith("+00:00")
    assert {k: lost[k] for k in ("run_id", "node", "attempt")} == {
        "run_id": "r-1",
        "node": "charge",
        "attempt": 2,
    }
    assert inside["run_id"] == "r-2"
    assert inside["node"] == "ship"
    assert inside["trace_id"] == "ab" * 16
    assert "attempt" not in inside


def test_secrets_are_masked_in_messages_fields_and_tracebacks(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = captured
    logger.info("connecting to postgresql://app:sekrit-db-password@db:5432/prod")
    logger.info("call with %s", "authorization: Bearer s3cr3t-bearer-value")
    logger.info(
        "model key sk-live0123456789abcdefXYZ, config %s", {"api_token": "hunter2-api-token"}
    )
    try:
        raise RuntimeError("token=hunter2-api-token refused")
    except RuntimeError:
        logger.exception("failed", extra={"run_id": "password=sekrit-db-password"})
    text = buffer.getvalue()
    for secret in SECRETS:
        assert secret not in text
    url, call, key, failed = lines(buffer)
    assert url["message"] == "connecting to postgresql://app:***@db:5432/prod"
    assert call["message"] == "call with authorization: Bearer ***"
    assert "***" in key["message"] and "api_token" in key["message"]
    assert "RuntimeError: token=*** refused" in failed["exception"]

    # The text format masks the same.
    formatter = logs.RedactingFormatter(logs.TEXT_FORMAT)
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "Bearer %s", ("s3cr3t-bearer-value",), None
    )
    assert "s3cr3t" not in formatter.format(record)


def test_ordinary_words_are_not_masked() -> None:
    for text in ("run r-1 node charge attempt 2", "tokenized 3 words", "a basic check"):
        assert logs.redact(text) == text


class JsonLogControlPlane(ControlPlane):
    def __init__(self, *args: Any, flag: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flag = flag

    def server_command(self, port: int) -> list[str]:
        command = super().server_command(port)
        return [*command, "--log-format", "json"] if self.flag else command


@pytest.mark.parametrize("flag", [True, False], ids=["flag", "environment"])
def test_the_server_logs_json_lines_without_its_database_password(
    database_url: str, processes: ProcessRegistry, flag: bool
) -> None:
    url = make_url(database_url)
    if url.drivername.startswith("postgresql"):
        # Trust authentication ignores it; a log line must never show it.
        database_url = url.set(password=SECRETS[0]).render_as_string(hide_password=False)
    if not flag:
        processes.env[logs.FORMAT_VARIABLE] = "json"
    plane = JsonLogControlPlane(processes, database_url, flag=flag)
    plane.start()
    register(plane.stub, three_steps("logged"))
    run_id = start_run(plane.stub, "logged", {})
    assert run_id
    assert plane.stop() == 0
    assert plane.process is not None
    stderr = plane.process.stderr()
    assert SECRETS[0] not in stderr
    records = [json.loads(line) for line in stderr.splitlines()]
    assert records, "the server logged nothing"
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record)
    assert any(r["logger"] == "surefoot.server" for r in records)


@pytest.mark.parametrize("where", ["flag", "environment"])
def test_an_unknown_log_format_is_a_usage_error_before_anything_starts(
    database_url: str, where: str
) -> None:
    args = ["server", "--database-url", database_url, "--listen", "127.0.0.1:0", "--no-auth"]
    if where == "flag":
        done = run_cli(*args, "--log-format", "xml")
    else:
        done = run_cli(*args, SUREFOOT_LOG_FORMAT="xml")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines()[-1].endswith(
        "argument --log-format: 'xml' is not a log format: text or json (SUREFOOT_LOG_FORMAT too)"
    )
