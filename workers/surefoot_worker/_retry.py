"""The default retry policy a step type declares to the control plane."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from surefoot.v1 import common_pb2


@dataclass(frozen=True)
class RetryPolicy:
    """How the control plane retries a failed attempt of a step type.

    After failed attempt *n* the next attempt waits a delay drawn with jitter from
    ``min(max_interval, initial_interval * backoff_coefficient ** (n - 1))``. A field left at
    ``None`` (or zero) takes the server default: 3 attempts, 1 s, x2, 60 s, 0.2 jitter; a
    jitter of 0 means none (jitter is the one field whose presence the protocol carries).

    Attributes:
        max_attempts: Total attempts including the first.
        initial_interval: Delay before the second attempt, in seconds.
        backoff_coefficient: Factor by which the delay grows per attempt (at least 1).
        max_interval: Upper bound of the delay, in seconds.
        jitter: Fraction in [0, 1]; the delay is drawn uniformly from base * (1 +/- jitter).
        non_retryable_error_types: Error types that dead-letter at once.
    """

    max_attempts: int | None = None
    initial_interval: float | None = None
    backoff_coefficient: float | None = None
    max_interval: float | None = None
    jitter: float | None = None
    non_retryable_error_types: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        # Checked here so that a bad policy fails at import time, next to the step that
        # declares it, rather than as an INVALID_ARGUMENT when the worker says Hello.
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError(f"max_attempts must be >= 0, got {self.max_attempts}")
        for name in ("initial_interval", "max_interval"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {value}")
        if self.backoff_coefficient not in (None, 0) and self.backoff_coefficient < 1:
            raise ValueError(f"backoff_coefficient must be >= 1, got {self.backoff_coefficient}")
        if self.jitter is not None and not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")
        if (
            self.initial_interval
            and self.max_interval
            and self.max_interval < self.initial_interval
        ):
            raise ValueError(
                f"max_interval ({self.max_interval}) is shorter than "
                f"initial_interval ({self.initial_interval})"
            )
        if isinstance(self.non_retryable_error_types, str):
            raise ValueError("non_retryable_error_types must be a sequence of names, not a str")
        # A tuple keeps the frozen dataclass hashable and immune to later mutation.
        object.__setattr__(self, "non_retryable_error_types", tuple(self.non_retryable_error_types))

    def to_proto(self) -> common_pb2.RetryPolicy:
        """Convert to the protobuf message; unset fields become 0 (server default).

        Returns:
            The ``surefoot.v1.RetryPolicy`` message.
        """
        message = common_pb2.RetryPolicy(
            max_attempts=self.max_attempts or 0,
            initial_interval_seconds=self.initial_interval or 0.0,
            backoff_coefficient=self.backoff_coefficient or 0.0,
            max_interval_seconds=self.max_interval or 0.0,
            non_retryable_error_types=list(self.non_retryable_error_types),
        )
        if self.jitter is not None:
            message.jitter = self.jitter
        return message

    @classmethod
    def from_proto(cls, message: common_pb2.RetryPolicy) -> RetryPolicy:
        """Build a policy from its protobuf message; zero fields become ``None``.

        Args:
            message: A ``surefoot.v1.RetryPolicy``.

        Returns:
            The equivalent policy.
        """
        return cls(
            max_attempts=message.max_attempts or None,
            initial_interval=message.initial_interval_seconds or None,
            backoff_coefficient=message.backoff_coefficient or None,
            max_interval=message.max_interval_seconds or None,
            jitter=message.jitter if message.HasField("jitter") else None,
            non_retryable_error_types=tuple(message.non_retryable_error_types),
        )
