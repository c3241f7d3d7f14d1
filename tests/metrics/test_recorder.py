"""The committer's figures reach the SDK through the recorder thread: every one, in order,
those queued before a stop included, and a recorder that fell behind says what it dropped."""

from __future__ import annotations

import logging
import threading

import pytest

from controlplane.metrics import commit_instruments
from controlplane.metrics.commit_instruments import Recorder
from tests.support.eventually import assert_eventually


def test_figures_are_recorded_in_order_on_the_recorders_thread() -> None:
    seen: list[tuple[float, dict[str, str] | None, str]] = []

    def record(value: float, attributes: dict[str, str] | None) -> None:
        seen.append((value, attributes, threading.current_thread().name))

    recorder = Recorder()
    recorder.start()
    try:
        for n in range(100):
            recorder.put([(record, n, {"k": "v"}), (record, n + 0.5, None)])
        assert_eventually(lambda: len(seen) == 200, message="200 figures recorded")
    finally:
        recorder.stop()
    assert [value for value, _, _ in seen] == [x / 2 for x in range(200)]
    assert {thread for _, _, thread in seen} == {"surefoot-metrics-record"}


def test_a_stop_records_what_was_queued_and_later_figures_are_recorded_at_once() -> None:
    seen: list[float] = []
    gate = threading.Event()

    def slow(value: float, attributes: dict[str, str] | None) -> None:
        gate.wait(5)
        seen.append(value)

    recorder = Recorder()
    recorder.start()
    for n in range(10):
        recorder.put([(slow, n, None)])
    gate.set()
    recorder.stop()
    assert seen == list(range(10))
    recorder.put([(lambda value, attributes: seen.append(value), 99, None)])
    assert seen[-1] == 99


def test_a_failing_figure_does_not_stop_the_recorder(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[float] = []

    def broken(value: float, attributes: dict[str, str] | None) -> None:
        raise ValueError("bad attribute")

    recorder = Recorder()
    recorder.start()
    try:
        with caplog.at_level(logging.WARNING, logger="surefoot.metrics"):
            recorder.put([(broken, 1, None)])
            recorder.put([(lambda value, attributes: seen.append(value), 2, None)])
            assert_eventually(lambda: seen == [2], message="the next figures recorded")
    finally:
        recorder.stop()
    assert "figures not recorded" in caplog.text


def test_a_recorder_that_fell_behind_drops_and_says_how_many(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(commit_instruments, "MAX_PENDING", 3)
    gate = threading.Event()
    seen: list[float] = []

    def held(value: float, attributes: dict[str, str] | None) -> None:
        gate.wait(5)
        seen.append(value)

    recorder = Recorder()
    recorder.start()
    with caplog.at_level(logging.WARNING, logger="surefoot.metrics"):
        recorder.put([(held, 0, None)])
        assert_eventually(lambda: recorder._pending.qsize() == 0, message="the first taken")
        for n in range(1, 6):
            recorder.put([(held, n, None)])
        gate.set()
        recorder.stop()
    assert seen == [0, 1, 2, 3]
    assert "figures of 2 transaction(s) dropped" in caplog.text
