"""`surefoot.http` against a real local HTTP server: what it sends, and how each answer maps
to an output, a retry (with the service's Retry-After) or a dead letter."""

from __future__ import annotations

import datetime
import email.utils
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from surefoot_connectors import http_exchange
from surefoot_connectors.http_exchange import parse_retry_after
from surefoot_worker import NonRetryableError, RetryLaterError, _outcome

from controlplane.store.connector_outcomes import STARTED
from tests.connectors.connector_calls import API_TOKEN, StepsFor, run_step
from tests.connectors.connector_servers import FakeApi, Reply
from tests.connectors.outcome_plane import OutcomeLedger


def test_a_2xx_answer_is_the_output_and_the_request_carries_the_idempotency_key(
    fake_api: FakeApi, steps_with: StepsFor
) -> None:
    fake_api.script("/customers", Reply(201, {"id": "cus_1"}, headers={"X-Request-Id": "r1"}))
    http = steps_with()["surefoot.http"]

    output = run_step(
        http,
        {
            "method": "POST",
            "url": fake_api.url("/customers"),
            "headers": {"X-Team": "ops"},
            "query": {"expand": "plan", "tag": ["a", "b"]},
            "json": {"name": "ACME"},
        },
        key="run-1:create",
    )

    assert output["status"] == 201
    assert output["body"] == {"id": "cus_1"}
    assert output["headers"]["x-request-id"] == "r1"
    assert output["headers"]["content-type"] == "application/json"
    (received,) = fake_api.received("/customers")
    assert received.method == "POST"
    assert received.path == "/customers?expand=plan&tag=a&tag=b"
    assert received.headers["idempotency-key"] == "run-1:create"
    assert received.headers["x-team"] == "ops"
    assert received.json() == {"name": "ACME"}


def test_a_text_answer_is_text_and_a_given_idempotency_key_header_wins(
    fake_api: FakeApi, steps_with: StepsFor
) -> None:
    fake_api.script("/ping", Reply(200, "pong"))
    output = run_step(
        steps_with()["surefoot.http"],
        {"url": fake_api.url("/ping"), "headers": {"idempotency-key": "mine"}, "body": "hi"},
    )
    assert output["body"] == "pong"
    (received,) = fake_api.received("/ping")
    assert received.headers["idempotency-key"] == "mine"
    assert received.body == b"hi"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_429_and_5xx_are_retried_after_the_services_retry_after(
    fake_api: FakeApi, steps_with: StepsFor, status: int
) -> None:
    fake_api.script("/busy", Reply(status, {"error": "busy"}, headers={"Retry-After": "7"}))
    with pytest.raises(RetryLaterError) as raised:
        run_step(steps_with()["surefoot.http"], {"url": fake_api.url("/busy")})
    assert raised.value.type == f"HttpStatus{status}"
    assert raised.value.retry_after == 7.0
    assert f"answered {status}" in raised.value.message and "busy" in raised.value.message


def test_retry_after_may_be_an_http_date() -> None:
    now = datetime.datetime(2026, 11, 25, 12, 0, 0, tzinfo=datetime.UTC)
    later = email.utils.format_datetime(now + datetime.timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now) == 90.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0  # past
    assert parse_retry_after("soon", now=now) == 0.0
    assert parse_retry_after(None) == 0.0
    assert parse_retry_after("999999999") == 86_400.0  # capped at a day


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
def test_other_4xx_fail_without_retry(fake_api: FakeApi, steps_with: StepsFor, status: int) -> None:
    fake_api.script("/bad", Reply(status, {"error": "nope"}))
    with pytest.raises(NonRetryableError) as raised:
        run_step(steps_with()["surefoot.http"], {"url": fake_api.url("/bad")})
    assert raised.value.type == f"HttpStatus{status}"
    assert len(fake_api.received("/bad")) == 1


def test_a_redirect_is_an_error_unless_asked_to_follow(
    fake_api: FakeApi, steps_with: StepsFor
) -> None:
    fake_api.script("/old", Reply(302, "", headers={"Location": "/new"}))
    fake_api.script("/new", Reply(200, {"moved": True}))
    http = steps_with()["surefoot.http"]
    with pytest.raises(NonRetryableError) as raised:
        run_step(http, {"url": fake_api.url("/old")})
    assert raised.value.type == "HttpStatus302" and "to /new" in raised.value.message
    followed = run_step(http, {"url": fake_api.url("/old"), "follow_redirects": True})
    assert followed["body"] == {"moved": True}


def test_a_refused_connection_is_retried(steps_with: StepsFor) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RetryLaterError) as raised:
        run_step(steps_with()["surefoot.http"], {"url": f"http://127.0.0.1:{port}/x"})
    assert raised.value.type == "HttpConnectError"
    assert raised.value.retry_after == 0.0


def test_a_long_body_is_cut_and_marked(fake_api: FakeApi, steps_with: StepsFor) -> None:
    fake_api.script("/big", Reply(200, "x" * 5000))
    output = run_step(
        steps_with()["surefoot.http"], {"url": fake_api.url("/big"), "max_response_bytes": 100}
    )
    assert output["body"] == "x" * 100 and output["truncated"] is True


def test_secrets_reach_the_service_and_never_come_back(
    fake_api: FakeApi, steps_with: StepsFor
) -> None:
    fake_api.script("/echo", Reply(200, echo_header="Authorization"))
    fake_api.script("/echo-refused", Reply(403, echo_header="Authorization"))
    http = steps_with()["surefoot.http"]
    headers = {"Authorization": "Bearer ${secret:api_token}"}

    output = run_step(
        http, {"url": fake_api.url("/echo") + "?k=${secret:API_TOKEN}", "headers": headers}
    )
    (received,) = fake_api.received("/echo")
    assert received.headers["authorization"] == f"Bearer {API_TOKEN}"
    assert received.path == f"/echo?k={API_TOKEN}"
    assert output["body"] == {"echo": "Bearer ***"}
    assert API_TOKEN not in repr(output)

    with pytest.raises(NonRetryableError) as raised:
        run_step(http, {"url": fake_api.url("/echo-refused"), "headers": headers})
    assert "Bearer ***" in raised.value.message
    assert API_TOKEN not in raised.value.message
    # What the SDK sends as the attempt's details: no chained exception quotes it either.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_an_unknown_secret_fails_naming_it_and_calls_nothing(
    fake_api: FakeApi, steps_with: StepsFor
) -> None:
    http = steps_with()["surefoot.http"]
    with pytest.raises(NonRetryableError) as raised:
        run_step(http, {"url": fake_api.url("/x"), "headers": {"Authorization": "${secret:nope}"}})
    assert raised.value.type == "SecretNotFound"
    assert "'nope'" in raised.value.message and "SUREFOOT_SECRET_NOPE" in raised.value.message
    with pytest.raises(NonRetryableError) as raised:
        run_step(http, {"url": fake_api.url("/x"), "headers": {"A": "${secret:not-a-name}"}})
    assert raised.value.type == "ConnectorInputInvalid"
    assert fake_api.received() == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({}, "input: 'url' is a required property"),
        ({"url": "ftp://x"}, "input.url: 'ftp://x' does not match '^https?://'"),
        ({"url": "http://x", "method": "FETCH"}, "input.method: 'FETCH' is not one of"),
        ({"url": "http://x", "headers": {"A": 1}}, "input.headers.A: 1 is not of type 'string'"),
        ({"url": "http://x", "jsn": {}}, "Additional properties are not allowed ('jsn'"),
        ({"url": "http://x", "json": {}, "body": "b"}, "give json or body, not both"),
        ("http://x", "input: 'http://x' is not of type 'object'"),
    ],
)
def test_bad_input_fails_without_retry_naming_the_field(
    steps_with: StepsFor, value: object, problem: str
) -> None:
    with pytest.raises(NonRetryableError) as raised:
        run_step(steps_with()["surefoot.http"], value)
    assert raised.value.type == "ConnectorInputInvalid"
    assert problem in raised.value.message


def test_with_dedupe_a_retry_replays_the_recorded_answer(
    fake_api: FakeApi, steps_with: StepsFor
) -> None:
    fake_api.script("/charge", Reply(200, {"charge": "ch_1"}), Reply(200, {"charge": "ch_2"}))
    http = steps_with()["surefoot.http"]
    request = {"method": "POST", "url": fake_api.url("/charge"), "dedupe": True}

    first = run_step(http, request, key="run-9:charge", attempt=1)
    again = run_step(http, request, key="run-9:charge", attempt=2)

    assert first["body"] == again["body"] == {"charge": "ch_1"}
    assert len(fake_api.received("/charge")) == 1


def test_with_dedupe_a_definite_error_lets_the_retry_call_again(
    fake_api: FakeApi, steps_with: StepsFor
) -> None:
    fake_api.script("/flaky", Reply(503, "down"), Reply(200, {"done": True}))
    http = steps_with()["surefoot.http"]
    request = {"method": "POST", "url": fake_api.url("/flaky"), "dedupe": True}
    with pytest.raises(RetryLaterError):
        run_step(http, request, key="run-8:flaky", attempt=1)
    assert run_step(http, request, key="run-8:flaky", attempt=2)["body"] == {"done": True}
    assert len(fake_api.received("/flaky")) == 2


@pytest.mark.parametrize(
    "value",
    [
        "²",  # str.isdigit() says yes, float() says no
        "-5",
        "1.5",
        "Wed, 21 Oct 99999999999999999999 07:28:00 GMT",  # numbers beyond a C long
        "Wed, 21 Oct 2026 07:28:00 +99999999999999999999",
    ],
)
def test_an_unreadable_retry_after_is_no_delay(value: str) -> None:
    assert parse_retry_after(value) == 0.0


@pytest.mark.parametrize("value", ["²", "Wed, 21 Oct 99999999999999999999 07:28:00 GMT"])
def test_an_unreadable_retry_after_still_retries_and_clears_the_record(
    fake_api: FakeApi, steps_with: StepsFor, sqlite_outcomes: OutcomeLedger, value: str
) -> None:
    """Under dedupe an error inside the call is taken for a call that may have happened:
    a header the parser chokes on must not turn a definite 429 into OutcomeUnknown."""
    fake_api.script("/slow", Reply(429, "slow down", headers={"Retry-After": value}))
    request = {"method": "POST", "url": fake_api.url("/slow"), "dedupe": True}
    with pytest.raises(RetryLaterError) as raised:
        run_step(steps_with()["surefoot.http"], request, key="run-10:slow")
    assert raised.value.type == "HttpStatus429" and raised.value.retry_after == 0.0
    assert sqlite_outcomes.read("run-10:slow") is None


def test_a_header_that_cannot_be_sent_is_bad_input_and_leaves_no_record(
    fake_api: FakeApi, steps_with: StepsFor, sqlite_outcomes: OutcomeLedger
) -> None:
    http = steps_with()["surefoot.http"]
    unsendable: list[dict[str, Any]] = [
        {"url": fake_api.url("/x"), "headers": {"X-Name": "Zoë"}},  # not ASCII
        {"url": "http://xn--ls8h.example/"},  # a host name IDNA refuses
    ]
    for number, request in enumerate(unsendable):
        key = f"run-11:{number}"
        with pytest.raises(NonRetryableError) as raised:
            run_step(http, {**request, "method": "POST", "dedupe": True}, key=key)
        assert raised.value.type == "ConnectorInputInvalid", raised.value.message
        assert "cannot send this request" in raised.value.message
        assert sqlite_outcomes.read(key) is None
    assert fake_api.received() == []


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_that_gave_up_leaves_the_outcome_unknown(
    fake_api: FakeApi, steps_with: StepsFor, sqlite_outcomes: OutcomeLedger, status: int
) -> None:
    """The service behind the gateway may have acted: without dedupe the retry goes out
    with the same Idempotency-Key; with dedupe nothing says it is safe to call again."""
    fake_api.script("/pay", Reply(status, "upstream timed out"))
    http = steps_with()["surefoot.http"]
    request = {"method": "POST", "url": fake_api.url("/pay")}

    with pytest.raises(RetryLaterError) as retried:
        run_step(http, request)
    assert retried.value.type == f"HttpStatus{status}"

    with pytest.raises(NonRetryableError) as unknown:
        run_step(http, {**request, "dedupe": True}, key="run-12:pay")
    assert unknown.value.type == "OutcomeUnknown"
    assert f"answered {status}" in unknown.value.message
    recorded = sqlite_outcomes.read("run-12:pay")
    assert recorded is not None and recorded.state == STARTED


@pytest.fixture
def other_api() -> Iterator[FakeApi]:
    """A second HTTP server: another port is another origin, as another host would be."""
    api = FakeApi().start()
    try:
        yield api
    finally:
        api.stop()


def test_a_redirect_to_another_origin_drops_the_headers_that_carry_secrets(
    fake_api: FakeApi, other_api: FakeApi, steps_with: StepsFor
) -> None:
    fake_api.script("/moved", Reply(302, "", headers={"Location": other_api.url("/elsewhere")}))
    fake_api.script("/here", Reply(302, "", headers={"Location": "/there"}))
    headers = {
        "X-Api-Key": "${secret:api_token}",
        "Authorization": "Basic not-a-secret-reference",
        "X-Team": "ops",
    }
    http = steps_with()["surefoot.http"]
    request = {"headers": headers, "follow_redirects": True}

    assert run_step(http, {**request, "url": fake_api.url("/moved")})["status"] == 200
    (first,) = fake_api.received("/moved")
    assert first.headers["x-api-key"] == API_TOKEN
    (elsewhere,) = other_api.received("/elsewhere")
    assert "x-api-key" not in elsewhere.headers
    assert "authorization" not in elsewhere.headers
    assert elsewhere.headers["x-team"] == "ops"

    # The same origin is the same service: it keeps its credentials.
    assert run_step(http, {**request, "url": fake_api.url("/here")})["status"] == 200
    (there,) = fake_api.received("/there")
    assert there.headers["x-api-key"] == API_TOKEN


def test_a_redirect_to_another_origin_that_would_resend_a_secret_body_is_refused(
    fake_api: FakeApi, other_api: FakeApi, steps_with: StepsFor
) -> None:
    fake_api.script("/login", Reply(307, "", headers={"Location": other_api.url("/steal")}))
    with pytest.raises(NonRetryableError) as raised:
        run_step(
            steps_with()["surefoot.http"],
            {
                "method": "POST",
                "url": fake_api.url("/login"),
                "json": {"password": "${secret:api_token}"},
                "follow_redirects": True,
            },
        )
    assert raised.value.type == "HttpRedirectRefused"
    assert other_api.received() == []
    assert API_TOKEN not in raised.value.message


def test_a_secret_cut_by_a_size_limit_is_hidden_whole(
    fake_api: FakeApi, steps_with: StepsFor
) -> None:
    """The cut falls inside the echoed secret: its first characters must not survive."""
    fake_api.script("/echo", Reply(200, "x" * 95 + API_TOKEN + "y" * 100))
    fake_api.script("/refuse", Reply(400, "e" * 290 + "\n\n" + API_TOKEN + " " + "z" * 300))
    http = steps_with()["surefoot.http"]

    output = run_step(http, {"url": fake_api.url("/echo"), "max_response_bytes": 100})
    assert output["body"] == "x" * 95 + "***yy" and output["truncated"] is True

    with pytest.raises(NonRetryableError) as raised:
        run_step(http, {"url": fake_api.url("/refuse")})
    assert "e" * 290 + " *** z" in raised.value.message
    assert API_TOKEN[:6] not in raised.value.message


def test_a_secret_spread_over_lines_is_hidden_in_a_one_line_error(
    fake_api: FakeApi, steps_with: StepsFor
) -> None:
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
    fake_api.script("/refuse", Reply(400, f"bad key: {key}"))
    with pytest.raises(NonRetryableError) as raised:
        run_step(
            steps_with({"PEM": key})["surefoot.http"],
            {"url": fake_api.url("/refuse"), "headers": {"X-Key-Id": "k1"}},
        )
    assert raised.value.message.endswith("bad key: ***")
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in raised.value.message


def test_a_failures_traceback_holds_no_secret(
    fake_api: FakeApi, steps_with: StepsFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the SDK sends as the attempt's details is the formatted traceback: neither the
    exception it shows nor any chained one may quote a secret."""
    fake_api.script("/refuse", Reply(403, echo_header="Authorization"))
    http = steps_with()["surefoot.http"]
    headers = {"Authorization": "Bearer ${secret:api_token}"}
    with pytest.raises(NonRetryableError) as refused:
        run_step(http, {"url": fake_api.url("/refuse"), "headers": headers})

    def broken_send(request: http_exchange.Request) -> http_exchange.Response:
        raise RuntimeError(f"a connector bug quoting {request.url} {request.headers}")

    monkeypatch.setattr(http_exchange, "send", broken_send)
    with pytest.raises(RetryLaterError) as unexpected:
        run_step(http, {"url": fake_api.url("/x?k=${secret:api_token}"), "headers": headers})

    for raised in (refused.value, unexpected.value):
        fail = _outcome.failed("task-1", 1, raised).fail
        assert "***" in fail.message
        assert API_TOKEN not in fail.message and API_TOKEN not in fail.details
        assert "Traceback" in fail.details
