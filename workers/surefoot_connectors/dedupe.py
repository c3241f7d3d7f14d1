"""Outcome records that keep a non-idempotent call from being made twice.

An SMTP server, a Slack webhook or a SQL ``INSERT`` does not dedupe on an idempotency key,
yet Surefoot runs every step at least once. So before such a call the connector claims the
task's idempotency key with the control plane (a STARTED record), and after it records the
outcome (COMPLETED), through ``surefoot.v1.ConnectorOutcomeService``:

- a COMPLETED record for the key: a previous attempt made the call and recorded what it
  returned, but its worker died before reporting it. Its outcome is returned; no call.
- a STARTED record: a previous attempt may have reached the service and died before it
  could record the outcome. Nobody can tell whether the effect happened, so the step fails
  with ``OutcomeUnknown``, which is not retried: it goes to the dead letters for a human.
- no record: the control plane records STARTED for this attempt (the database's primary key
  decides between racing attempts) and the call is made.

A call that certainly had no effect (the connection was refused, the service answered with
an error) clears its STARTED record, so that the retry may call again. The worker holds no
database connection: the records are the control plane's.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from surefoot.v1 import common_pb2, worker_service_pb2_grpc
from surefoot.v1 import worker_service_pb2 as wpb

from surefoot_connectors.call import ConnectorFailure

log = logging.getLogger("surefoot.connectors")

JSON_ENCODING = "json/plain"
# A claim or a clear is one short call; the control plane answers it from one transaction.
CALL_TIMEOUT_SECONDS = 10.0
# How long a made call keeps trying to record its outcome while the control plane cannot be
# reached: the record is what makes a crash before the result is reported harmless.
COMPLETE_PATIENCE_SECONDS = 30.0
# Answers that a later call may not get: the control plane is away, busy or raced.
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
# Answers about this worker or its request, which asking again does not change.
_REFUSED = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


class OutcomeRecords:
    """The control plane's outcome records, as one connector worker uses them.

    Args:
        address: The control plane's gRPC address, ``host:port``.
        namespace: The namespace of the runs whose steps this worker runs.
        token: A bearer token, required by a control plane started with an auth file.
        complete_patience: See ``COMPLETE_PATIENCE_SECONDS``.
        channel: A channel to `address` opened by the caller (with TLS credentials or
            client interceptors); an insecure one by default. Closed by :meth:`close`.
    """

    def __init__(
        self,
        address: str,
        *,
        namespace: str = "default",
        token: str = "",
        complete_patience: float = COMPLETE_PATIENCE_SECONDS,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.address = address
        self.namespace = namespace
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._channel = channel or grpc.insecure_channel(address)
        self._stub = worker_service_pb2_grpc.ConnectorOutcomeServiceStub(self._channel)
        self._patience = complete_patience

    def close(self) -> None:
        self._channel.close()

    def run_once(
        self,
        *,
        idempotency_key: str,
        connector: str,
        attempt: int,
        send: Callable[[], Any],
    ) -> Any:
        """Call `send` unless an attempt of this key did already; see the module docstring.

        Args:
            idempotency_key: The task's idempotency key.
            connector: The connector's name, recorded with the record.
            attempt: The attempt number, so that only this attempt's record is changed.
            send: Makes the call; returns the JSON-safe outcome or raises ConnectorFailure.

        Returns:
            This call's outcome, or the outcome a previous attempt recorded.

        Raises:
            ConnectorFailure: ``OutcomeUnknown`` (not retryable) when a previous attempt
                may have made the call, or this one may have and failed without knowing;
                ``OutcomeStoreUnavailable`` (retryable, nothing called) when the control
                plane cannot keep the records now; ``OutcomeStoreRefused`` (not retryable,
                nothing called) when it refuses this worker; or `send`'s own failure.
        """
        replayed = self._claim(idempotency_key, connector, attempt)
        if replayed is not None:
            return replayed.outcome
        try:
            outcome = send()
        except ConnectorFailure as failure:
            if failure.may_have_acted:
                raise ConnectorFailure(
                    f"{failure.message}; the call may have reached the service, so it is not "
                    f"retried automatically (idempotency key {idempotency_key}): check the "
                    "service before running the step again",
                    type="OutcomeUnknown",
                    retryable=False,
                    may_have_acted=True,
                ) from None
            self._release(idempotency_key, attempt)
            raise
        except Exception as exc:
            # A bug between the claim and the answer: nobody knows how far the call got.
            raise ConnectorFailure(
                f"{type(exc).__name__}: {exc}; the call may have reached the service, so it "
                f"is not retried automatically (idempotency key {idempotency_key})",
                type="OutcomeUnknown",
                retryable=False,
                may_have_acted=True,
            ) from None
        self._complete(idempotency_key, attempt, outcome)
        return outcome

    def _claim(self, key: str, connector: str, attempt: int) -> _Replayed | None:
        request = wpb.BeginCallRequest(
            namespace=self.namespace, idempotency_key=key, connector=connector, attempt=attempt
        )
        try:
            answer = self._stub.BeginCall(
                request, timeout=CALL_TIMEOUT_SECONDS, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            raise _claim_failure(exc, key) from None
        if answer.state == wpb.CALL_RECORD_STATE_CLAIMED:
            return None
        if answer.state == wpb.CALL_RECORD_STATE_COMPLETED:
            log.info(
                "%s: replaying the outcome attempt %d recorded for %s",
                connector,
                answer.attempt,
                key,
            )
            return _Replayed(_decoded(answer.outcome))
        started = answer.started_at.ToDatetime(tzinfo=datetime.UTC)
        when = started.isoformat(timespec="seconds").replace("+00:00", "Z")
        raise ConnectorFailure(
            f"attempt {answer.attempt} of this step started calling the service at "
            f"{when} and did not record how it ended; the call may have happened, so "
            f"it is not made again automatically (idempotency key {key}): check the "
            "service, then skip the step with its result, or, if the call did not "
            "happen, retry it with forget_connector_outcome (`surefoot deadletters "
            "retry --forget-connector-outcome`)",
            type="OutcomeUnknown",
            retryable=False,
            may_have_acted=True,
        )

    def _complete(self, key: str, attempt: int, outcome: Any) -> None:
        request = wpb.CompleteCallRequest(
            namespace=self.namespace,
            idempotency_key=key,
            attempt=attempt,
            outcome=common_pb2.Payload(
                encoding=JSON_ENCODING, data=json.dumps(outcome, ensure_ascii=False).encode()
            ),
        )
        deadline = time.monotonic() + self._patience
        while True:
            try:
                answer = self._stub.CompleteCall(
                    request,
                    timeout=max(0.1, deadline - time.monotonic()),
                    metadata=self._metadata,
                    # Waits for a control plane that is restarting instead of failing at once.
                    wait_for_ready=True,
                )
                break
            except grpc.RpcError as exc:
                if _code(exc) in _TRANSIENT and time.monotonic() < deadline:
                    continue
                # The call succeeded: report its output anyway. Only a crash before the
                # report leaves the STARTED record for a human, which is the safe side.
                log.warning("could not record the outcome of %s: %s", key, _described(exc))
                return
        if not answer.recorded:
            log.warning("the STARTED record of %s attempt %d was gone when it ended", key, attempt)

    def _release(self, key: str, attempt: int) -> None:
        """Clear this attempt's STARTED record: the call certainly had no effect."""
        request = wpb.ClearCallRequest(
            namespace=self.namespace, idempotency_key=key, attempt=attempt
        )
        try:
            self._stub.ClearCall(request, timeout=CALL_TIMEOUT_SECONDS, metadata=self._metadata)
        except grpc.RpcError as exc:
            # The record stays STARTED, so the retry asks a human instead of calling: safe.
            log.warning("could not clear the STARTED record of %s: %s", key, _described(exc))


@dataclass(frozen=True)
class _Replayed:
    """The outcome an earlier attempt recorded (which may itself be None)."""

    outcome: Any


def _decoded(payload: common_pb2.Payload) -> Any:
    return json.loads(payload.data) if payload.data else None


def _code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(exc, "code", None)
    return code() if callable(code) else None


def _described(exc: grpc.RpcError) -> str:
    code = _code(exc)
    details = getattr(exc, "details", None)
    text = details() if callable(details) else str(exc)
    return " ".join(f"{code.name if code else 'ERROR'}: {text}".split())


def _claim_failure(exc: grpc.RpcError, key: str) -> ConnectorFailure:
    # Nothing was called yet: another attempt, once the control plane answers, may call.
    code = _code(exc)
    if code == grpc.StatusCode.ABORTED:
        return ConnectorFailure(
            f"the outcome record of {key} keeps changing under this attempt",
            type="OutcomeStoreContention",
            retryable=True,
            may_have_acted=False,
        )
    if code in _REFUSED:
        return ConnectorFailure(
            f"the control plane refused the outcome record of {key}: {_described(exc)} "
            "(check the worker's --token and --namespace)",
            type="OutcomeStoreRefused",
            retryable=False,
            may_have_acted=False,
        )
    return ConnectorFailure(
        f"the connector outcome records cannot be used: {_described(exc)}",
        type="OutcomeStoreUnavailable",
        retryable=True,
        may_have_acted=False,
    )
