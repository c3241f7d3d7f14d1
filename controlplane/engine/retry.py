"""Retry policies: defaults, resolution and the backoff delay."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_INITIAL_INTERVAL = 1.0
DEFAULT_BACKOFF = 2.0
DEFAULT_MAX_INTERVAL = 60.0
DEFAULT_JITTER = 0.2


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    initial_interval: float = DEFAULT_INITIAL_INTERVAL
    backoff_coefficient: float = DEFAULT_BACKOFF
    max_interval: float = DEFAULT_MAX_INTERVAL
    jitter: float = DEFAULT_JITTER
    non_retryable_error_types: tuple[str, ...] = field(default=())

    def base_delay(self, failed_attempt: int) -> float:
        """The delay before the attempt after `failed_attempt`, before jitter."""
        exponent = max(failed_attempt - 1, 0)
        try:
            raw = self.initial_interval * self.backoff_coefficient**exponent
        except OverflowError:
            # Long past the point where max_interval caps the delay.
            return self.max_interval
        return min(self.max_interval, raw)

    def delay_for(self, failed_attempt: int, uniform: Callable[[], float]) -> float:
        """The jittered delay: drawn uniformly from base * (1 ± jitter); `uniform` gives [0, 1)."""
        base = self.base_delay(failed_attempt)
        return max(0.0, base * (1.0 + self.jitter * (2.0 * uniform() - 1.0)))

    def gives_up_after(self, attempt: int) -> bool:
        return attempt >= self.max_attempts

    def to_json(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "initial_interval": self.initial_interval,
            "backoff_coefficient": self.backoff_coefficient,
            "max_interval": self.max_interval,
            "jitter": self.jitter,
            "non_retryable_error_types": list(self.non_retryable_error_types),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetryPolicy:
        return cls(
            max_attempts=int(data["max_attempts"]),
            initial_interval=float(data["initial_interval"]),
            backoff_coefficient=float(data["backoff_coefficient"]),
            max_interval=float(data["max_interval"]),
            jitter=float(data["jitter"]),
            non_retryable_error_types=tuple(data.get("non_retryable_error_types", ())),
        )
