"""The worker's channel: token and TLS options checked before anything is sent, and results
kept within the message size limit so that one large output cannot break the stream."""

from __future__ import annotations

from pathlib import Path

import pytest
from surefoot.v1 import worker_service_pb2 as pb
from surefoot_worker import ChannelSettings, Worker
from surefoot_worker._outcome import completed
from surefoot_worker._stream import coalesce_results
from surefoot_worker.examples import orders

from tests.support.tls import make_tls_files


def test_a_plaintext_channel_sends_the_token_as_bearer_metadata() -> None:
    assert ChannelSettings().metadata == ()
    assert ChannelSettings(token=" s3cret\n").metadata == (("authorization", "Bearer s3cret"),)
    checked = ChannelSettings(token="s3cret").checked()
    assert checked.credentials is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (ChannelSettings(token="two words"), "--token must be printable ASCII"),
        (ChannelSettings(token="caf\u00e9"), "--token must be printable ASCII"),
        (ChannelSettings(tls_ca="ca.pem", tls_cert="c.pem"), "--tls-cert and --tls-key"),
        (ChannelSettings(tls_cert="c.pem", tls_key="k.pem"), "--tls-cert needs --tls-ca"),
        (ChannelSettings(tls_server_name="cp"), "--tls-server-name needs --tls-ca"),
        (ChannelSettings(tls_ca="/no/such/ca.pem"), "cannot read --tls-ca /no/such/ca.pem"),
        (ChannelSettings(max_message_bytes=100), "max_message_bytes"),
    ],
)
def test_unusable_options_are_refused_naming_the_option(
    settings: ChannelSettings, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        settings.checked()


def test_a_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello")
    with pytest.raises(ValueError, match="is not a PEM file"):
        ChannelSettings(tls_ca=str(not_pem)).checked()


def test_a_ca_bundle_turns_tls_on_and_a_client_pair_adds_mutual_tls(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    pair = files.client("worker-payments")
    settings = ChannelSettings(
        tls_ca=str(files.ca.cert), tls_cert=str(pair.cert), tls_key=str(pair.key)
    )
    assert settings.checked().credentials is not None


def test_settings_come_from_the_environment_unless_given() -> None:
    environ = {"SUREFOOT_TOKEN": "t", "SUREFOOT_TLS_CA": "ca.pem", "SUREFOOT_TLS_KEY": ""}
    settings = ChannelSettings.from_environment(environ, tls_ca="other.pem")
    assert (settings.token, settings.tls_ca, settings.tls_key) == ("t", "other.pem", None)


def test_results_coalesce_into_messages_within_the_size_limit() -> None:
    results: list[pb.WorkerMessage | None] = [
        completed(f"run:step-{i}:1", 1, "x" * 30_000) for i in range(10)
    ]
    merged = coalesce_results(results, max_bytes=100_000)
    assert all(m is not None and m.ByteSize() <= 100_000 for m in merged)
    ids = [
        c.task_id
        for m in merged
        if m is not None
        for c in ([m.complete] if m.HasField("complete") else m.results.completes)
    ]
    assert ids == [f"run:step-{i}:1" for i in range(10)]
    assert len(merged) == 4


def test_an_output_larger_than_a_message_fails_its_attempt_instead() -> None:
    worker = Worker("localhost:7233", [orders.charge_card], max_message_bytes=65_536)
    worker._record(("run:charge:1", 1), completed("run:charge:1", 1, "x" * 70_000))
    worker._record(("run:ship:1", 1), completed("run:ship:1", 1, {"ok": True}))
    large, small = worker._results.pending()
    assert large.fail.error_type == "OutputTooLarge" and not large.fail.retryable
    assert "bytes, more than" in large.fail.message
    assert small.complete.task_id == "run:ship:1"
