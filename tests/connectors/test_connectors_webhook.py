"""`surefoot.webhook` against a real local HTTP server standing in for a Slack webhook."""

from __future__ import annotations

import pytest
from surefoot_worker import NonRetryableError, RetryLaterError

from tests.connectors.connector_calls import StepsFor, run_step
from tests.connectors.connector_servers import FakeApi, Reply


def test_it_posts_slack_json(fake_api: FakeApi, steps_with: StepsFor) -> None:
    fake_api.script("/services/T0/B0/x", Reply(200, "ok"))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*ACME* signed up"}}]
    output = run_step(
        steps_with()["surefoot.webhook"],
        {
            "url": fake_api.url("/services/T0/B0/x"),
            "text": "ACME signed up",
            "blocks": blocks,
            "username": "surefoot",
            "icon_emoji": ":rocket:",
        },
    )
    assert output == {"status": 200, "body": "ok"}
    (received,) = fake_api.received("/services/T0/B0/x")
    assert received.method == "POST"
    assert received.headers["content-type"] == "application/json"
    assert received.json() == {
        "text": "ACME signed up",
        "blocks": blocks,
        "username": "surefoot",
        "icon_emoji": ":rocket:",
    }


def test_rate_limits_are_retried_after_retry_after_and_then_posted_once(
    fake_api: FakeApi, steps_with: StepsFor
) -> None:
    fake_api.script("/hook", Reply(429, "rate_limited", headers={"Retry-After": "30"}), Reply())
    webhook = steps_with()["surefoot.webhook"]
    message = {"url": fake_api.url("/hook"), "text": "hello"}
    with pytest.raises(RetryLaterError) as raised:
        run_step(webhook, message, key="run-1:notify", attempt=1)
    assert raised.value.type == "HttpStatus429" and raised.value.retry_after == 30.0
    # The 429 was a definite answer: the retry posts, and a third attempt does not.
    assert run_step(webhook, message, key="run-1:notify", attempt=2)["status"] == 200
    assert run_step(webhook, message, key="run-1:notify", attempt=3)["status"] == 200
    assert len(fake_api.received("/hook")) == 2


def test_a_refused_payload_dead_letters(fake_api: FakeApi, steps_with: StepsFor) -> None:
    fake_api.script("/hook", Reply(400, "invalid_payload"))
    with pytest.raises(NonRetryableError) as raised:
        run_step(steps_with()["surefoot.webhook"], {"url": fake_api.url("/hook"), "text": "x"})
    assert raised.value.type == "HttpStatus400"
    assert "invalid_payload" in raised.value.message


def test_the_url_is_usually_a_secret_and_errors_do_not_show_it(
    fake_api: FakeApi, steps_with: StepsFor
) -> None:
    fake_api.script("/services/secret-path", Reply(404, "no_service"))
    url = fake_api.url("/services/secret-path")
    webhook = steps_with({"SLACK_URL": url})["surefoot.webhook"]
    with pytest.raises(NonRetryableError) as raised:
        run_step(webhook, {"url": "${secret:slack_url}", "text": "x"})
    assert len(fake_api.received("/services/secret-path")) == 1
    assert "secret-path" not in raised.value.message
    assert "*** answered 404" in raised.value.message
