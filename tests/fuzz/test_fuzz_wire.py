"""Fuzzing below the message: random and damaged bytes as request bodies, and worker streams
that open with something other than a Hello, a Hello too big or malformed, then garbage.

Acceptance (issue 11): no crash, no UNKNOWN or INTERNAL, and a refusal writes nothing. A
worker stream the server welcomed may register its step types (the Hello's purpose), and
nothing else: a result for a task it does not hold is refused and writes nothing.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from surefoot.v1 import common_pb2
from surefoot.v1 import worker_service_pb2 as wpb

from tests.fuzz.conftest import Requests, fuzz_settings
from tests.fuzz.fingerprint import Fingerprint, difference
from tests.fuzz.messages import MessageStrategies
from tests.fuzz.target import (
    METHODS,
    OK,
    Target,
    assert_accepted_or_refused,
    assert_unchanged,
)
from tests.support.eventually import assert_eventually


def damaged(body: bytes) -> st.SearchStrategy[bytes]:
    """`body` truncated, with bytes flipped, or with random bytes spliced in."""
    if not body:
        return st.binary(max_size=16)
    size = len(body)
    truncated = st.integers(0, size - 1).map(lambda n: body[:n])
    flipped = st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)), max_size=4).map(
        lambda flips: _flip(body, flips)
    )
    spliced = st.tuples(st.integers(0, size), st.binary(min_size=1, max_size=12)).map(
        lambda cut: body[: cut[0]] + cut[1] + body[cut[0] :]
    )
    return truncated | flipped | spliced


def _flip(body: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(body)
    for index, mask in flips:
        out[index] ^= mask
    return bytes(out)


# Wire-format traps: a length prefix far past the end, a varint that never ends, a field
# number 0, a group start, every byte value.
WIRE_TRAPS = (
    b"\x0a\xff\xff\xff\xff\x0f",
    b"\x08" + b"\xff" * 11,
    b"\x00\x01",
    b"\x0b",
    b"\x0c",
    bytes(range(256)),
    b"\x12\x05\x0a\x03\xff\xfe\xfd",
    b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
)


@fuzz_settings(max_examples=400)
@given(data=st.data())
def test_random_bytes_as_a_request_body_are_refused_and_write_nothing(
    trusting: Target, requests: Requests, data: st.DataObject
) -> None:
    method = data.draw(st.sampled_from(METHODS), label="method")
    valid = data.draw(requests.of(method), label="request").SerializeToString()
    body = data.draw(
        st.binary(max_size=256) | st.sampled_from(WIRE_TRAPS) | damaged(valid), label="body"
    )
    before = trusting.fingerprint()
    code = trusting.call(method, body)
    assert_accepted_or_refused(trusting, f"{method} with body {body[:300]!r}", code)
    if code == OK:
        trusting.database.settled()
    else:
        assert_unchanged(before, trusting.fingerprint(), f"{method} with body {body[:300]!r}")


def worker_messages(target: Target) -> MessageStrategies:
    """Worker messages aimed at the seeded tasks; never naming a seeded step type, so that
    no stream of this fuzz is ever given a task."""
    ids = target.seeded.task_ids
    return MessageStrategies({"task_id": ids, "task_ids": ids, "namespace": ["", "default"]})


def hello(worker: str, *step_types: str) -> wpb.WorkerMessage:
    declarations = [
        common_pb2.StepTypeDeclaration(
            name=name, version="1", idempotency=common_pb2.IDEMPOTENCY_KEY
        )
        for name in step_types
    ]
    return wpb.WorkerMessage(hello=wpb.Hello(worker_id=worker, step_types=declarations))


def stream_messages(messages: MessageStrategies) -> st.SearchStrategy[list[bytes]]:
    any_message = messages.of(wpb.WorkerMessage)
    hellos = messages.near([hello("fuzz-worker", "fuzz-other"), hello("fuzz-worker")])
    first = st.one_of(
        hellos.map(lambda m: m.SerializeToString()),
        any_message.map(lambda m: m.SerializeToString()),
        st.binary(max_size=64),
        st.sampled_from(WIRE_TRAPS),
    )
    following = st.one_of(
        any_message.map(lambda m: m.SerializeToString()),
        any_message.map(lambda m: m.SerializeToString()),
        st.binary(max_size=64),
    )
    return st.tuples(first, st.lists(following, max_size=6)).map(lambda t: [t[0], *t[1]])


def assert_only_step_types_stay(target: Target, before: Fingerprint, what: str) -> None:
    """A welcomed stream leaves its step types declared and nothing else: its presence row
    (worker_sessions) goes when the control plane has processed the stream's end."""

    def only_step_types() -> bool:
        changed = difference(before, target.database.take())
        assert set(changed) <= {"step_types", "worker_sessions"}, f"{what} wrote {changed}"
        return set(changed) <= {"step_types"}

    assert_eventually(only_step_types, message=f"{what}: the stream's presence row went")


@fuzz_settings(max_examples=100)
@given(data=st.data())
def test_odd_worker_streams_are_refused_and_write_nothing_but_their_step_types(
    trusting: Target, data: st.DataObject
) -> None:
    messages = data.draw(stream_messages(worker_messages(trusting)), label="messages")
    before = trusting.fingerprint()
    code, received = trusting.stream(messages)
    what = f"a worker stream of {[m[:200] for m in messages]!r}"
    assert_accepted_or_refused(trusting, what, code)
    kinds = [wpb.ServerMessage.FromString(m).WhichOneof("message") for m in received]
    assert "tasks" not in kinds, f"{what} was given a task: {kinds}"
    after = trusting.database.settled()
    if "welcome" not in kinds:
        assert_unchanged(before, after, what)
    else:
        assert_only_step_types_stay(trusting, before, what)


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param([], id="no-message-at-all"),
        pytest.param([wpb.WorkerMessage(credit=wpb.Credit(n=5))], id="credit-before-hello"),
        pytest.param(
            [wpb.WorkerMessage(complete=wpb.Complete(task_id="x:y:1", attempt=1))],
            id="complete-before-hello",
        ),
        pytest.param([hello("w", *(f"t{i}" for i in range(20_000)))], id="huge-hello"),
        pytest.param([hello("w\x00", "t")], id="nul-in-hello"),
        pytest.param([hello("w", "")], id="nameless-step-type"),
    ],
)
def test_a_stream_that_does_not_open_with_a_usable_hello_is_refused_and_writes_nothing(
    trusting: Target, messages: list[wpb.WorkerMessage]
) -> None:
    before = trusting.database.settled()
    code, received = trusting.stream([m.SerializeToString() for m in messages])
    assert code != OK and not received, (code, received)
    assert_accepted_or_refused(trusting, f"a stream of {messages!r:.300}", code)
    assert_unchanged(before, trusting.database.settled(), f"a stream of {messages!r:.300}")
    trusting.assert_alive()


def test_results_for_tasks_a_stream_does_not_hold_write_nothing(trusting: Target) -> None:
    """The seeded tasks are dead letters: a Complete, Fail, HandBack or Heartbeat naming
    them from a stream that never held them changes nothing."""
    task_ids = trusting.seeded.task_ids
    assert task_ids
    results = [
        wpb.WorkerMessage(heartbeat=wpb.Heartbeat(task_ids=task_ids)),
        *(
            wpb.WorkerMessage(complete=wpb.Complete(task_id=task, attempt=1, output=None))
            for task in task_ids
        ),
        *(
            wpb.WorkerMessage(
                fail=wpb.Fail(task_id=task, attempt=1, error_type="Forged", retryable=True)
            )
            for task in task_ids
        ),
        *(wpb.WorkerMessage(hand_back=wpb.HandBack(task_id=task, attempt=1)) for task in task_ids),
    ]
    before = trusting.database.settled()
    code, received = trusting.stream(
        [hello("fuzz-forger", "fuzz-other").SerializeToString()]
        + [m.SerializeToString() for m in results]
    )
    assert_accepted_or_refused(trusting, "a forging stream", code)
    kinds = [wpb.ServerMessage.FromString(m).WhichOneof("message") for m in received]
    assert "ack" not in kinds, f"a forged result was acknowledged: {kinds}"
    assert_only_step_types_stay(trusting, before, "forged results")
