"""RetryPolicy: validation and its protobuf form (zero means server default)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from surefoot.v1 import common_pb2
from surefoot_worker import RetryPolicy


def test_to_proto_carries_every_field() -> None:
    policy = RetryPolicy(
        max_attempts=7,
        initial_interval=0.25,
        backoff_coefficient=3.0,
        max_interval=90.0,
        jitter=0.1,
        non_retryable_error_types=["CardDeclined", "InvalidAddress"],
    )
    message = policy.to_proto()
    assert message == common_pb2.RetryPolicy(
        max_attempts=7,
        initial_interval_seconds=0.25,
        backoff_coefficient=3.0,
        max_interval_seconds=90.0,
        jitter=0.1,
        non_retryable_error_types=["CardDeclined", "InvalidAddress"],
    )


def test_unset_fields_become_zero_for_the_server_default() -> None:
    message = RetryPolicy(max_attempts=2).to_proto()
    assert message.max_attempts == 2
    assert message.initial_interval_seconds == 0
    assert message.backoff_coefficient == 0
    assert message.max_interval_seconds == 0
    assert message.jitter == 0
    assert list(message.non_retryable_error_types) == []


def test_policy_is_frozen_and_hashable() -> None:
    policy = RetryPolicy(non_retryable_error_types=["A"])
    assert policy.non_retryable_error_types == ("A",)
    assert hash(policy) == hash(RetryPolicy(non_retryable_error_types=("A",)))
    with pytest.raises(AttributeError):
        policy.max_attempts = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": -1},
        {"initial_interval": -0.5},
        {"backoff_coefficient": 0.5},
        {"jitter": 1.5},
        {"initial_interval": 10.0, "max_interval": 1.0},
        {"non_retryable_error_types": "CardDeclined"},
    ],
)
def test_nonsense_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


positive = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)


@given(
    max_attempts=st.none() | st.integers(min_value=1, max_value=1000),
    initial=st.none() | positive,
    coefficient=st.none() | st.floats(min_value=1.0, max_value=100.0),
    jitter=st.none() | st.floats(min_value=0.001, max_value=1.0),
    types=st.lists(st.text(min_size=1, max_size=20), max_size=4),
)
def test_round_trip_through_the_wire(
    max_attempts: int | None,
    initial: float | None,
    coefficient: float | None,
    jitter: float | None,
    types: list[str],
) -> None:
    policy = RetryPolicy(
        max_attempts=max_attempts,
        initial_interval=initial,
        backoff_coefficient=coefficient,
        max_interval=None,
        jitter=jitter,
        non_retryable_error_types=types,
    )
    wire = policy.to_proto().SerializeToString()
    assert RetryPolicy.from_proto(common_pb2.RetryPolicy.FromString(wire)) == policy
