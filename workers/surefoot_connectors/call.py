"""What a connector handler is given (one call) and what it raises when the call fails."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from surefoot_worker import StepContext

if TYPE_CHECKING:
    from surefoot_connectors.dedupe import OutcomeRecords
    from surefoot_connectors.redaction import Redactor
    from surefoot_connectors.secrets import Secrets


class ConnectorFailure(Exception):
    """A connector call that did not succeed, and what that means for a retry.

    The step wrapper turns it into the SDK's ``RetryLaterError`` or ``NonRetryableError``
    after redacting secrets from the message.

    Args:
        message: What went wrong, for the operator (secrets are redacted later).
        type: The error type recorded on the attempt (``HttpStatus503``); dead letters group
            by it, so it is stable and names the cause, not the instance.
        retryable: Whether another attempt may succeed.
        may_have_acted: Whether the remote side may have carried out the call (a timeout
            after the request was sent). Required so that every raise says it: under
            deduplication it decides between calling again and asking a human.
        retry_after: Seconds the service asked us to wait (HTTP ``Retry-After``).
        details: JSON-safe facts for the attempt's error details (an AI call's replies),
            secrets already hidden; None for the usual traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        type: str,
        retryable: bool,
        may_have_acted: bool,
        retry_after: float = 0.0,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.retryable = retryable
        self.may_have_acted = may_have_acted
        self.retry_after = retry_after
        self.details = details


@dataclass(frozen=True)
class ConnectorCall:
    """One attempt of a connector step, with the input's secrets already resolved.

    Attributes:
        connector: The connector's name (``surefoot.http``).
        input: The validated step input, ``${secret:NAME}`` references replaced by values.
        context: The SDK's context of the attempt (idempotency key, attempt, deadline).
        outcomes: Where non-idempotent calls record their outcome.
        redactor: Hides every known secret value; applied to what is recorded.
        secrets: The worker's secrets, for a connector that resolves its own references
            (``Connector.resolves_secrets`` false); None otherwise.
    """

    connector: str
    input: dict[str, Any]
    context: StepContext
    outcomes: OutcomeRecords
    redactor: Redactor
    secrets: Secrets | None = None

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt of this step in this run."""
        return self.context.idempotency_key

    def timeout(self, seconds: float) -> float:
        """`seconds`, shortened so that the call ends before the attempt's deadline."""
        deadline = self.context.deadline
        if deadline is None:
            return seconds
        left = (deadline - datetime.datetime.now(datetime.UTC)).total_seconds()
        # Never zero: a call with no time at all would fail with a confusing timeout.
        return max(0.5, min(seconds, left))

    def deduplicated(self, send: Callable[[], Any]) -> Any:
        """Run `send` at most once per idempotency key, replaying its recorded outcome.

        For services that do not dedupe themselves (SMTP, Slack webhooks, a SQL statement):
        see :class:`surefoot_connectors.dedupe.OutcomeRecords`.

        Args:
            send: Makes the call and returns its JSON-safe outcome, or raises
                :class:`ConnectorFailure`.

        Returns:
            The outcome, redacted: this attempt's, or the one a previous attempt recorded.
        """
        return self.outcomes.run_once(
            idempotency_key=self.idempotency_key,
            connector=self.connector,
            attempt=self.context.attempt,
            send=lambda: self.redactor.value(send()),
        )
