"""Outcome records that keep a non-idempotent call from being made twice.

An SMTP server, a Slack webhook or a SQL ``INSERT`` does not dedupe on an idempotency key,
yet Surefoot runs every step at least once (law 3). So before such a call the connector
writes a STARTED row under the task's idempotency key in ``connector_outcomes``, and after
it a COMPLETED row holding the outcome:

- a COMPLETED row for the key: a previous attempt made the call and recorded what it
  returned, but its worker died before reporting it. Its outcome is returned; no call.
- a STARTED row: a previous attempt may have reached the service and died before it could
  record the outcome. Nobody can tell whether the effect happened, so the step fails with
  ``OutcomeUnknown``, which is not retried: it goes to the dead letters for a human.
- no row: insert STARTED (the primary key decides between racing attempts) and call.

A call that certainly had no effect (the connection was refused, the service answered with
an error) deletes its STARTED row, so that the retry may call again.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from controlplane.connectors.call import ConnectorFailure
from controlplane.store.database import open_engine
from controlplane.store.schema import connector_outcomes

log = logging.getLogger("surefoot.connectors")

STARTED = "STARTED"
COMPLETED = "COMPLETED"
# A few attempts race only when a key's row appears and disappears between the insert and
# the read; more than that is a bug, not contention.
_CLAIM_ROUNDS = 3


class OutcomeStoreUnavailable(Exception):
    """The database of the outcome records cannot be used (unreachable, no table)."""


@dataclass(frozen=True)
class Recorded:
    """The row of a key when an attempt finds one."""

    state: str
    attempt: int
    started_at: datetime.datetime
    outcome: Any


class OutcomeStore:
    """The ``connector_outcomes`` table of the Surefoot database, SQLite or PostgreSQL.

    Args:
        engine: An engine from :func:`controlplane.store.database.open_engine`.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, database_url: str) -> OutcomeStore:
        """Open the store at `database_url` and check that its table is there.

        Raises:
            OutcomeStoreUnavailable: Says why, with the password of the URL hidden.
        """
        try:
            engine = open_engine(database_url, pool_size=4)
        except (ValueError, SQLAlchemyError, ImportError) as exc:
            # open_engine's own message hides the password; a URL that does not even
            # parse is not repeated, since it may hold one.
            raise OutcomeStoreUnavailable(f"cannot use the database URL: {exc}") from None
        store = cls(engine)
        try:
            store.check()
        except OutcomeStoreUnavailable:
            engine.dispose()
            raise
        return store

    def check(self) -> None:
        """Raise :class:`OutcomeStoreUnavailable` unless the table can be read."""
        url = self._engine.url.render_as_string(hide_password=True)
        try:
            with self._engine.connect() as connection:
                connection.execute(select(connector_outcomes.c.idempotency_key).limit(1))
        except SQLAlchemyError as exc:
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
            raise OutcomeStoreUnavailable(
                f"cannot read connector_outcomes in the database at {url} ({reason}); "
                "is it the Surefoot database, migrated by `surefoot db upgrade`?"
            ) from None

    def close(self) -> None:
        self._engine.dispose()

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
            connector: The connector's name, recorded with the row.
            attempt: The attempt number, so that only this attempt's row is changed.
            send: Makes the call; returns the JSON-safe outcome or raises ConnectorFailure.

        Returns:
            This call's outcome, or the outcome a previous attempt recorded.

        Raises:
            ConnectorFailure: ``OutcomeUnknown`` (not retryable) when a previous attempt
                may have made the call, or this one may have and failed without knowing;
                ``OutcomeStoreUnavailable`` (retryable, nothing called) when the database
                cannot be used; or `send`'s own failure.
        """
        recorded = self._claim(idempotency_key, connector, attempt)
        if recorded is not None:
            log.info(
                "%s: replaying the outcome attempt %d recorded for %s",
                connector,
                recorded.attempt,
                idempotency_key,
            )
            return recorded.outcome
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

    def _claim(self, key: str, connector: str, attempt: int) -> Recorded | None:
        for _ in range(_CLAIM_ROUNDS):
            try:
                with self._engine.begin() as connection:
                    connection.execute(
                        insert(connector_outcomes).values(
                            idempotency_key=key,
                            connector=connector,
                            state=STARTED,
                            attempt=attempt,
                            started_at=_now(),
                        )
                    )
                return None
            except IntegrityError:
                pass  # a row exists: read it below
            except SQLAlchemyError as exc:
                raise _store_failure(exc) from None
            recorded = self.read(key)
            if recorded is None:
                continue  # released meanwhile: try the insert again
            if recorded.state == COMPLETED:
                return recorded
            started = recorded.started_at.isoformat(timespec="seconds").replace("+00:00", "Z")
            raise ConnectorFailure(
                f"attempt {recorded.attempt} of this step started calling the service at "
                f"{started} and did not record how it ended; the call may have happened, so "
                f"it is not made again automatically (idempotency key {key}): check the "
                "service, then skip the step with its result, or, if the call did not "
                "happen, retry it with forget_connector_outcome (`surefoot deadletters "
                "retry --forget-connector-outcome`)",
                type="OutcomeUnknown",
                retryable=False,
                may_have_acted=True,
            )
        raise ConnectorFailure(
            f"the outcome record of {key} keeps changing under this attempt",
            type="OutcomeStoreContention",
            retryable=True,
            may_have_acted=False,
        )

    def read(self, key: str) -> Recorded | None:
        """The row of `key`, or None."""
        try:
            with self._engine.connect() as connection:
                row = connection.execute(
                    select(
                        connector_outcomes.c.state,
                        connector_outcomes.c.attempt,
                        connector_outcomes.c.started_at,
                        connector_outcomes.c.outcome,
                    ).where(connector_outcomes.c.idempotency_key == key)
                ).first()
        except SQLAlchemyError as exc:
            raise _store_failure(exc) from None
        if row is None:
            return None
        outcome = json.loads(row.outcome) if row.outcome is not None else None
        return Recorded(row.state, row.attempt, row.started_at, outcome)

    def _complete(self, key: str, attempt: int, outcome: Any) -> None:
        try:
            with self._engine.begin() as connection:
                changed = connection.execute(
                    update(connector_outcomes)
                    .where(
                        connector_outcomes.c.idempotency_key == key,
                        connector_outcomes.c.state == STARTED,
                        connector_outcomes.c.attempt == attempt,
                    )
                    .values(
                        state=COMPLETED,
                        outcome=json.dumps(outcome, ensure_ascii=False),
                        completed_at=_now(),
                    )
                ).rowcount
        except SQLAlchemyError as exc:
            # The call succeeded: report its output anyway. Only a crash before the report
            # leaves the STARTED row for a human, which is the safe side.
            log.warning("could not record the outcome of %s: %s", key, _one_line(exc))
            return
        if not changed:
            log.warning("the STARTED record of %s attempt %d was gone when it ended", key, attempt)

    def _release(self, key: str, attempt: int) -> None:
        """Delete this attempt's STARTED row: the call certainly had no effect."""
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    delete(connector_outcomes).where(
                        connector_outcomes.c.idempotency_key == key,
                        connector_outcomes.c.state == STARTED,
                        connector_outcomes.c.attempt == attempt,
                    )
                )
        except SQLAlchemyError as exc:
            # The row stays STARTED, so the retry asks a human instead of calling: safe.
            log.warning("could not clear the STARTED record of %s: %s", key, _one_line(exc))

    def forget(self, key: str) -> bool:
        """Delete the record of `key` whatever its state, so that a retry calls again.

        For an operator who checked the service after an ``OutcomeUnknown``.

        Returns:
            Whether there was a record.
        """
        with self._engine.begin() as connection:
            deleted = connection.execute(
                delete(connector_outcomes).where(connector_outcomes.c.idempotency_key == key)
            ).rowcount
        return bool(deleted)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


def _store_failure(exc: SQLAlchemyError) -> ConnectorFailure:
    # Nothing was called yet: another attempt, once the database is back, may call.
    return ConnectorFailure(
        f"the connector outcome records cannot be used: {_one_line(exc)}",
        type="OutcomeStoreUnavailable",
        retryable=True,
        may_have_acted=False,
    )
