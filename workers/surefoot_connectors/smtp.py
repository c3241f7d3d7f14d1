"""``surefoot.smtp``: send a plain-text email through an SMTP server, once.

SMTP has no idempotency key, so the outcome is recorded (see ``dedupe.py``) and the
``Message-ID`` is derived from the task's idempotency key: should a human decide to send
again after an ``OutcomeUnknown``, mail clients that thread by Message-ID show one message.
"""

from __future__ import annotations

import email.utils
import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from surefoot_worker import RetryPolicy

from surefoot_connectors.call import ConnectorCall, ConnectorFailure
from surefoot_connectors.registry import Connector

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "surefoot.smtp input",
    "type": "object",
    "required": ["host", "from", "to", "subject", "text"],
    "additionalProperties": False,
    "properties": {
        "host": {"type": "string", "minLength": 1, "description": "SMTP server host"},
        "port": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "default": 25,
            "description": "SMTP server port (587 for submission with starttls)",
        },
        "from": {"type": "string", "minLength": 3, "description": "sender address"},
        "to": {
            "type": "array",
            "items": {"type": "string", "minLength": 3},
            "minItems": 1,
            "description": "recipient addresses",
        },
        "subject": {"type": "string", "description": "subject line"},
        "text": {"type": "string", "description": "plain-text body"},
        "username": {"type": "string", "description": "login user; may be ${secret:NAME}"},
        "password": {"type": "string", "description": "login password; use ${secret:NAME}"},
        "starttls": {
            "type": "boolean",
            "default": False,
            "description": "upgrade the connection with STARTTLS before logging in",
        },
        "allow_plaintext_login": {
            "type": "boolean",
            "default": False,
            "description": "log in without starttls (a password in clear: local test servers only)",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 600,
            "default": 30,
            "description": "socket timeout of each SMTP command",
        },
    },
}


def send_email(call: ConnectorCall) -> dict[str, Any]:
    """Send the message once; the output names its Message-ID and the accepted recipients.

    Raises:
        ConnectorFailure: ``SmtpStatus<code>`` for a refusal (4xx retryable, 5xx not),
            ``SmtpConnectError`` when the server cannot be reached, ``OutcomeUnknown``
            when the connection broke while the message was being handed over.
    """
    given = call.input
    _check_login(given)
    recipients = _recipients(given["to"])
    message = _message(given, call.idempotency_key)
    timeout = call.timeout(float(given.get("timeout_seconds", 30)))

    def send() -> dict[str, Any]:
        refused = _deliver(given, message, recipients, timeout)
        accepted = [
            entry
            for entry, address in zip(given["to"], recipients, strict=True)
            if address not in refused
        ]
        return {
            "message_id": message["Message-ID"],
            "accepted": accepted,
            "refused": {address: f"{code} {text}" for address, (code, text) in refused.items()},
        }

    return dict(call.deduplicated(send))


def message_id(idempotency_key: str, sender: str) -> str:
    """The same Message-ID for every attempt of one step, in the sender's domain."""
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "surefoot.invalid"
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<surefoot.{digest}@{domain}>"


def _check_login(given: dict[str, Any]) -> None:
    """Refuse to send a password over an unencrypted connection unless asked to.

    Raises:
        ConnectorFailure: ``ConnectorInputInvalid``.
    """
    logs_in = bool(given.get("username") or given.get("password"))
    if logs_in and not given.get("starttls") and not given.get("allow_plaintext_login"):
        raise ConnectorFailure(
            "surefoot.smtp input is invalid: a login needs starttls: true (the password "
            "would cross the network in clear); allow_plaintext_login: true is for local "
            "test servers",
            type="ConnectorInputInvalid",
            retryable=False,
            may_have_acted=False,
        )


def _recipients(entries: list[str]) -> list[str]:
    """The address of each `to` entry, which must name exactly one.

    The envelope is built from these, one per entry: an entry such as
    ``"ops@acme.test, list@elsewhere.test"`` (from a form field, say) is refused rather
    than sent to both.

    Raises:
        ConnectorFailure: ``ConnectorInputInvalid``, naming the entry.
    """
    addresses: list[str] = []
    for index, entry in enumerate(entries):
        found = email.utils.getaddresses([entry])
        if len(found) != 1 or "@" not in found[0][1]:
            raise ConnectorFailure(
                f"surefoot.smtp input is invalid: input.to[{index}]: {entry!r} is not one "
                "email address",
                type="ConnectorInputInvalid",
                retryable=False,
                may_have_acted=False,
            )
        addresses.append(found[0][1])
    return addresses


def _message(given: dict[str, Any], idempotency_key: str) -> EmailMessage:
    message = EmailMessage()
    try:
        message["From"] = given["from"]
        message["To"] = ", ".join(given["to"])
        message["Subject"] = given["subject"]
    except ValueError as exc:  # a header with a line break in it
        raise ConnectorFailure(
            f"surefoot.smtp input is invalid: {exc}",
            type="ConnectorInputInvalid",
            retryable=False,
            may_have_acted=False,
        ) from None
    message["Message-ID"] = message_id(idempotency_key, given["from"])
    message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    message.set_content(given["text"])
    return message


def _deliver(
    given: dict[str, Any], message: EmailMessage, recipients: list[str], timeout: float
) -> dict[str, tuple[int, str]]:
    """Hand the message to the server; returns the recipients it refused (others took it)."""
    server = f"{given['host']}:{given.get('port', 25)}"
    # Until the message data is sent, a failure means nothing was delivered; while it is,
    # a broken connection leaves the server's decision unknown.
    handing_over = False
    try:
        smtp = smtplib.SMTP(given["host"], int(given.get("port", 25)), timeout=timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise ConnectorFailure(
            f"cannot reach the SMTP server {server}: {_reason(exc)}",
            type="SmtpConnectError",
            retryable=True,
            may_have_acted=False,
        ) from None
    try:
        smtp.ehlo()
        if given.get("starttls"):
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if given.get("username") or given.get("password"):
            smtp.login(given.get("username", ""), given.get("password", ""))
        handing_over = True
        refused: dict[str, tuple[int, bytes]] = smtp.send_message(message, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise ConnectorFailure(
            f"the SMTP server {server} refused every recipient: "
            + "; ".join(f"{a}: {c} {_text(t)}" for a, (c, t) in exc.recipients.items()),
            type=f"SmtpStatus{codes[0] if codes else 550}",
            retryable=all(400 <= code < 500 for code in codes),
            may_have_acted=False,
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise ConnectorFailure(
            f"the SMTP server {server} refused the login: {exc.smtp_code} {_text(exc.smtp_error)}",
            type="SmtpAuthenticationFailed",
            retryable=False,
            may_have_acted=False,
        ) from None
    except smtplib.SMTPResponseException as exc:
        # The server answered with a refusal: definite, whatever the phase.
        raise ConnectorFailure(
            f"the SMTP server {server} answered {exc.smtp_code} {_text(exc.smtp_error)}",
            type=f"SmtpStatus{exc.smtp_code}",
            retryable=400 <= exc.smtp_code < 500,
            may_have_acted=False,
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise ConnectorFailure(
            f"the SMTP server {server} does not support what the input asks: {_reason(exc)}",
            type="SmtpNotSupported",
            retryable=False,
            may_have_acted=False,
        ) from None
    except UnicodeError as exc:
        # smtplib encodes the login as ASCII, and the message and the commands before the
        # message data is sent (as ASCII unless the server speaks SMTPUTF8): nothing went
        # out. The message names the encoding, not the character: it may be a password's.
        encoding = getattr(exc, "encoding", None) or "its encoding"
        raise ConnectorFailure(
            f"the SMTP server {server} cannot be sent this input: part of it (the login, an "
            f"address, the text) does not encode as {encoding}",
            type="ConnectorInputInvalid",
            retryable=False,
            may_have_acted=False,
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise ConnectorFailure(
            f"the SMTP server {server} has a certificate this worker does not trust: "
            f"{_reason(exc)}",
            type="SmtpCertificateRejected",
            retryable=False,
            may_have_acted=False,
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise ConnectorFailure(
            f"the connection to the SMTP server {server} failed: {_reason(exc)}",
            type="SmtpConnectionLost",
            retryable=True,
            may_have_acted=handing_over,
        ) from None
    finally:
        _close(smtp)
    return {address: (code, _text(text)) for address, (code, text) in refused.items()}


def _close(smtp: smtplib.SMTP) -> None:
    # After the server accepted the message, a failed QUIT changes nothing.
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    return " ".join(text.split())


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


CONNECTOR = Connector(
    name="surefoot.smtp",
    version="1",
    summary="Send a plain-text email through an SMTP server, once",
    input_schema=INPUT_SCHEMA,
    idempotency="key",
    retry=RetryPolicy(
        max_attempts=5,
        initial_interval=5.0,
        backoff_coefficient=2.0,
        max_interval=300.0,
        jitter=0.2,
    ),
    handler=send_email,
)
