"""`surefoot.smtp` against a real SMTP server (aiosmtpd): one message per step, whatever the
retries; refusals and unreachable servers mapped to dead letters and retries."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from surefoot_connectors.smtp import message_id
from surefoot_worker import NonRetryableError, RetryLaterError

from tests.connectors.connector_calls import StepsFor, run_step
from tests.connectors.connector_servers import SmtpSink
from tests.connectors.outcome_plane import OutcomeLedger

SMTP_PASSWORD = "pw-correct-horse-battery"


def _mail(sink: SmtpSink, **extra: object) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": sink.port,
        "from": "Surefoot <robot@surefoot.test>",
        "to": ["ops@acme.test", "cto@acme.test"],
        "subject": "Welcome, ACME",
        "text": "Your workspace is ready.\n",
        **extra,
    }


def test_one_message_reaches_the_server_and_a_retry_does_not_send_again(
    smtp_sink: SmtpSink, steps_with: StepsFor
) -> None:
    smtp = steps_with()["surefoot.smtp"]
    first = run_step(smtp, _mail(smtp_sink), key="run-1:welcome", attempt=1)
    again = run_step(smtp, _mail(smtp_sink), key="run-1:welcome", attempt=2)

    assert first == again
    (mail,) = smtp_sink.messages
    assert mail.recipients == ["ops@acme.test", "cto@acme.test"]
    assert mail.sender == "robot@surefoot.test"
    assert mail.message["Subject"] == "Welcome, ACME"
    assert mail.message["Message-ID"] == message_id("run-1:welcome", "robot@surefoot.test")
    assert mail.message["Message-ID"].endswith("@surefoot.test>")
    body = mail.message.get_payload()
    assert isinstance(body, str)  # one plain-text part, not a multipart list
    assert body.strip() == "Your workspace is ready."
    assert first["message_id"] == mail.message["Message-ID"]
    assert first["accepted"] == ["ops@acme.test", "cto@acme.test"] and first["refused"] == {}


@pytest.fixture
def smtp_with_login() -> Iterator[SmtpSink]:
    sink = SmtpSink(password=SMTP_PASSWORD, refuse=("gone@acme.test",)).start()
    try:
        yield sink
    finally:
        sink.stop()


def test_the_password_is_a_secret_resolved_in_the_worker(
    smtp_with_login: SmtpSink, steps_with: StepsFor
) -> None:
    smtp = steps_with({"SMTP_PASSWORD": SMTP_PASSWORD})["surefoot.smtp"]
    login = {
        "username": "robot",
        "password": "${secret:smtp_password}",
        "allow_plaintext_login": True,
    }
    output = run_step(smtp, _mail(smtp_with_login, to=["ops@acme.test", "gone@acme.test"], **login))
    assert smtp_with_login.logins == [("robot", SMTP_PASSWORD)]
    (mail,) = smtp_with_login.messages
    assert mail.login == "robot" and mail.recipients == ["ops@acme.test"]
    assert output["accepted"] == ["ops@acme.test"]
    assert output["refused"]["gone@acme.test"].startswith("550")

    wrong = steps_with({"SMTP_PASSWORD": "not-it"})["surefoot.smtp"]
    with pytest.raises(NonRetryableError) as raised:
        run_step(wrong, _mail(smtp_with_login, **login))
    assert raised.value.type == "SmtpAuthenticationFailed"
    assert "not-it" not in raised.value.message
    assert len(smtp_with_login.messages) == 1


def test_refused_recipients_dead_letter_and_the_step_may_be_sent_after_a_fix(
    smtp_with_login: SmtpSink, steps_with: StepsFor
) -> None:
    smtp = steps_with({"SMTP_PASSWORD": SMTP_PASSWORD})["surefoot.smtp"]
    login = {
        "username": "robot",
        "password": "${secret:smtp_password}",
        "allow_plaintext_login": True,
    }
    refused = _mail(smtp_with_login, to=["gone@acme.test"], **login)
    with pytest.raises(NonRetryableError) as raised:
        run_step(smtp, refused, key="run-2:mail", attempt=1)
    assert raised.value.type == "SmtpStatus550"
    assert smtp_with_login.messages == []
    # A definite refusal leaves no record: the same step with a fixed input sends.
    fixed = run_step(smtp, _mail(smtp_with_login, **login), key="run-2:mail", attempt=2)
    assert fixed["accepted"] == ["ops@acme.test", "cto@acme.test"]
    assert len(smtp_with_login.messages) == 1


def test_an_unreachable_server_is_retried(steps_with: StepsFor) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = {
        "host": "127.0.0.1",
        "port": port,
        "from": "a@b.test",
        "to": ["c@d.test"],
        "subject": "s",
        "text": "t",
    }
    with pytest.raises(RetryLaterError) as raised:
        run_step(steps_with()["surefoot.smtp"], message)
    assert raised.value.type == "SmtpConnectError"


def test_a_header_injection_is_refused(smtp_sink: SmtpSink, steps_with: StepsFor) -> None:
    with pytest.raises(NonRetryableError) as raised:
        run_step(steps_with()["surefoot.smtp"], _mail(smtp_sink, subject="hi\nBcc: x@evil.test"))
    assert raised.value.type == "ConnectorInputInvalid"
    assert smtp_sink.messages == []


def test_a_to_entry_naming_several_addresses_is_refused(
    smtp_sink: SmtpSink, steps_with: StepsFor
) -> None:
    """One entry is one recipient: a field holding `a@x, b@y` must not widen the envelope."""
    smtp = steps_with()["surefoot.smtp"]
    for entry in ("ops@acme.test, list@elsewhere.test", "ops@acme.test list@elsewhere.test"):
        with pytest.raises(NonRetryableError) as raised:
            run_step(smtp, _mail(smtp_sink, to=["cto@acme.test", entry]))
        assert raised.value.type == "ConnectorInputInvalid"
        assert "input.to[1]" in raised.value.message
    assert smtp_sink.messages == []
    # A display name may hold a comma when it is quoted.
    output = run_step(smtp, _mail(smtp_sink, to=['"Doe, Jane" <jane@acme.test>']))
    assert output["accepted"] == ['"Doe, Jane" <jane@acme.test>']
    (mail,) = smtp_sink.messages
    assert mail.recipients == ["jane@acme.test"]


def test_a_password_smtplib_cannot_encode_is_bad_input_and_leaves_no_record(
    smtp_with_login: SmtpSink, steps_with: StepsFor, sqlite_outcomes: OutcomeLedger
) -> None:
    smtp = steps_with({"SMTP_PASSWORD": "pässwörd-9"})["surefoot.smtp"]
    login = {
        "username": "robot",
        "password": "${secret:smtp_password}",
        "allow_plaintext_login": True,
    }
    with pytest.raises(NonRetryableError) as raised:
        run_step(smtp, _mail(smtp_with_login, **login), key="run-3:mail")
    assert raised.value.type == "ConnectorInputInvalid"
    assert "ä" not in raised.value.message and "\\xe4" not in raised.value.message
    assert sqlite_outcomes.read("run-3:mail") is None
    assert smtp_with_login.messages == []


def test_a_login_without_tls_is_refused_unless_allowed(
    smtp_with_login: SmtpSink, steps_with: StepsFor
) -> None:
    smtp = steps_with({"SMTP_PASSWORD": SMTP_PASSWORD})["surefoot.smtp"]
    login = {"username": "robot", "password": "${secret:smtp_password}"}

    with pytest.raises(NonRetryableError) as raised:
        run_step(smtp, _mail(smtp_with_login, **login))

    assert raised.value.type == "ConnectorInputInvalid"
    assert "starttls" in raised.value.message
    assert smtp_with_login.logins == [] and smtp_with_login.messages == []
