"""Turning the connectors into SDK steps: validate, resolve secrets, call, redact, classify.

Every connector step runs the same way, so that no connector can forget a part of it:

1. the ``${secret:NAME}`` references of the input are replaced by the worker's secret
   values (``SecretNotFound`` if one is missing, not retried);
2. the input is checked against the connector's JSON Schema; a bad input fails with
   ``ConnectorInputInvalid``, not retried;
3. the handler makes the call;
4. whatever comes back, output or error, has every secret value replaced by ``***`` before
   it leaves the worker, so it never reaches the history, the console or a log.

The handlers are plain functions: they run in the SDK's thread pool, where the blocking
clients they use (smtplib, psycopg, the outcome records' gRPC channel) belong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError, best_match
from surefoot_worker import NonRetryableError, RetryLaterError, StepContext, StepDefinition

from surefoot_connectors.call import ConnectorCall, ConnectorFailure
from surefoot_connectors.dedupe import OutcomeRecords
from surefoot_connectors.failure_details import details_line
from surefoot_connectors.redaction import Redactor
from surefoot_connectors.registry import Connector, all_connectors
from surefoot_connectors.secrets import MalformedReference, SecretNotFound, Secrets

log = logging.getLogger("surefoot.connectors")

# Enough to fix an input without a second try, short enough for one line in `runs show`.
_MAX_REPORTED_PROBLEMS = 3


@dataclass(frozen=True)
class ConnectorRuntime:
    """What the connector steps of one worker share.

    Attributes:
        secrets: The values ``${secret:NAME}`` references resolve to.
        outcomes: The outcome records of non-idempotent calls.
    """

    secrets: Secrets
    outcomes: OutcomeRecords

    @property
    def redactor(self) -> Redactor:
        return self.secrets.redactor()


def connector_steps(
    runtime: ConnectorRuntime, connectors: tuple[Connector, ...] | None = None
) -> list[StepDefinition]:
    """SDK step definitions of the connectors, ready to give to a ``Worker``.

    Args:
        runtime: The secrets and outcome records the steps use.
        connectors: Which ones; all of them by default.

    Returns:
        One step definition per connector.
    """
    redactor = runtime.redactor
    return [
        StepDefinition(
            name=connector.name,
            version=connector.version,
            idempotency=connector.idempotency,
            retry=connector.retry,
            handler=_step_handler(connector, runtime, redactor),
            is_async=False,
            description=connector.summary,
        )
        for connector in (all_connectors() if connectors is None else connectors)
    ]


def _step_handler(
    connector: Connector, runtime: ConnectorRuntime, redactor: Redactor
) -> Callable[[StepContext, Any], Any]:
    def handle(ctx: StepContext, raw_input: Any) -> Any:
        try:
            return redactor.value(_run(connector, runtime, redactor, ctx, raw_input))
        except ConnectorFailure as failure:
            message = redactor.text(failure.message)
            # `from None`: the SDK sends the traceback along, and a chained exception's
            # message (an HTTP library's, a driver's) may quote a secret.
            error: Exception
            if failure.retryable:
                error = RetryLaterError(message, retry_after=failure.retry_after, type=failure.type)
            else:
                error = NonRetryableError(message, type=failure.type)
            if failure.details is not None:
                # The SDK sends a failure's traceback as its details; the note ends it, so
                # the facts arrive as the details' last line, one JSON object.
                error.add_note(details_line(redactor.value(failure.details)))
            raise error from None
        except Exception as exc:
            # A bug of the connector: keep the whole story in the worker's log (its
            # handlers redact), and send the control plane a redacted line.
            log.exception("%s failed unexpectedly (task %s)", connector.name, ctx.task_id)
            message = redactor.text(f"{type(exc).__name__}: {exc}")
            raise RetryLaterError(message, retry_after=0.0, type=type(exc).__name__) from None

    handle.__qualname__ = handle.__name__ = connector.name.replace(".", "_")
    return handle


def _run(
    connector: Connector,
    runtime: ConnectorRuntime,
    redactor: Redactor,
    ctx: StepContext,
    raw_input: Any,
) -> Any:
    try:
        resolved = runtime.secrets.resolve(raw_input) if connector.resolves_secrets else raw_input
    except SecretNotFound as exc:
        raise ConnectorFailure(
            str(exc), type="SecretNotFound", retryable=False, may_have_acted=False
        ) from None
    except MalformedReference as exc:
        raise ConnectorFailure(
            f"{connector.name} input is invalid: {exc}",
            type="ConnectorInputInvalid",
            retryable=False,
            may_have_acted=False,
        ) from None
    # Checked with the values in place, so that a URL given whole as a secret is checked as
    # a URL; the messages quote values, which the step wrapper redacts.
    problems = input_problems(connector, resolved)
    if problems:
        raise ConnectorFailure(
            f"{connector.name} input is invalid: {'; '.join(problems)}",
            type="ConnectorInputInvalid",
            retryable=False,
            may_have_acted=False,
        )
    call = ConnectorCall(
        connector=connector.name,
        input=resolved,
        context=ctx,
        outcomes=runtime.outcomes,
        redactor=redactor,
        secrets=None if connector.resolves_secrets else runtime.secrets,
    )
    return connector.handler(call)


def input_problems(connector: Connector, value: Any) -> list[str]:
    """What is wrong with an input, one line per problem (at most a few), or nothing.

    Args:
        connector: The connector whose schema applies.
        value: The input as the step received it.

    Returns:
        Problems such as ``input.url: 'ftp://x' does not match '^https?://'``.
    """
    errors = sorted(connector.validator.iter_errors(value), key=_error_order)
    if not errors:
        return []
    first = best_match(errors)
    ordered = [first] + [e for e in errors if e is not first]
    return [_describe(error) for error in ordered[:_MAX_REPORTED_PROBLEMS]]


def _error_order(error: ValidationError) -> tuple[int, str]:
    return (len(error.absolute_path), _location(error))


def _location(error: ValidationError) -> str:
    location = "input"
    for part in error.absolute_path:
        location += f"[{part}]" if isinstance(part, int) else f".{part}"
    return location


def _describe(error: ValidationError) -> str:
    return f"{_location(error)}: {error.message}"
