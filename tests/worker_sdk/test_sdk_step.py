"""The @step decorator: declaration errors at decoration time, defaults, protobuf form."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from surefoot.v1 import common_pb2
from surefoot_worker import RetryPolicy, StepContext, StepDeclarationError, StepDefinition, step


def test_missing_idempotency_is_refused_at_decoration_naming_the_function() -> None:
    with pytest.raises(StepDeclarationError) as raised:

        @step()
        async def charge_card(ctx: StepContext, input: Any) -> Any:
            return None

    message = str(raised.value)
    assert "charge_card" in message
    for choice in ("'key'", "'natural'", "'none'"):
        assert choice in message
    assert "\n" not in message
    assert isinstance(raised.value, TypeError)


def test_invalid_idempotency_is_refused_and_shown() -> None:
    with pytest.raises(StepDeclarationError, match=r"refund.*got 'maybe'"):

        @step(idempotency="maybe")  # type: ignore[arg-type]
        def refund(ctx: StepContext, input: Any) -> Any:
            return None


def test_bare_decorator_is_refused_naming_the_function() -> None:
    def send_email(ctx: StepContext, input: Any) -> Any:
        return None

    with pytest.raises(StepDeclarationError, match="send_email"):
        step(send_email)  # type: ignore[arg-type]


def test_handler_that_cannot_take_ctx_and_input_is_refused() -> None:
    with pytest.raises(StepDeclarationError, match="two positional arguments"):

        @step(idempotency="natural")
        def lonely(ctx: StepContext) -> Any:
            return None


def test_empty_version_is_refused() -> None:
    with pytest.raises(StepDeclarationError, match="version"):

        @step(idempotency="natural", version="")
        def f(ctx: StepContext, input: Any) -> Any:
            return None


def test_name_defaults_to_function_name_with_dashes_and_version_to_1() -> None:
    @step(idempotency="key")
    async def reserve_stock_now(ctx: StepContext, input: Any) -> Any:
        """Reserve the items.

        More text that is not the description.
        """
        return input

    definition = StepDefinition.of(reserve_stock_now)
    assert definition is not None
    assert definition.name == "reserve-stock-now"
    assert definition.version == "1"
    assert definition.idempotency == "key"
    assert definition.retry is None
    assert definition.is_async
    assert definition.handler is reserve_stock_now
    assert definition.description == "Reserve the items."


def test_explicit_name_version_and_description_win() -> None:
    @step("charge-card", version="2", idempotency="none", description="Charges.")
    def charge(ctx: StepContext, input: Any) -> Any:
        """Ignored docstring."""
        return input

    definition = StepDefinition.of(charge)
    assert definition is not None
    assert definition.key == ("charge-card", "2")
    assert definition.description == "Charges."
    assert not definition.is_async


def test_decorated_functions_stay_callable() -> None:
    @step(idempotency="natural")
    def double(ctx: Any, input: int) -> int:
        return input * 2

    @step(idempotency="natural")
    async def triple(ctx: Any, input: int) -> int:
        return input * 3

    assert double(None, 4) == 8
    assert asyncio.run(triple(None, 4)) == 12


def test_of_returns_none_for_plain_objects_and_the_definition_itself() -> None:
    def plain(ctx: Any, input: Any) -> Any:
        return None

    assert StepDefinition.of(plain) is None
    assert StepDefinition.of(42) is None

    @step(idempotency="natural")
    def decorated(ctx: Any, input: Any) -> Any:
        return None

    definition = StepDefinition.of(decorated)
    assert definition is not None
    assert StepDefinition.of(definition) is definition


@pytest.mark.parametrize(
    ("idempotency", "expected"),
    [
        ("key", common_pb2.IDEMPOTENCY_KEY),
        ("natural", common_pb2.IDEMPOTENCY_NATURAL),
        ("none", common_pb2.IDEMPOTENCY_NONE),
    ],
)
def test_to_proto_survives_the_wire(idempotency: Any, expected: int) -> None:
    retry = RetryPolicy(max_attempts=5, initial_interval=0.5, non_retryable_error_types=["Bad"])

    @step("ship-order", version="3", idempotency=idempotency, retry=retry, description="Ships.")
    async def ship(ctx: StepContext, input: Any) -> Any:
        return None

    definition = StepDefinition.of(ship)
    assert definition is not None
    wire = definition.to_proto().SerializeToString()
    declaration = common_pb2.StepTypeDeclaration.FromString(wire)

    assert declaration.name == "ship-order"
    assert declaration.version == "3"
    assert declaration.idempotency == expected
    assert declaration.description == "Ships."
    assert declaration.HasField("retry")
    assert RetryPolicy.from_proto(declaration.retry) == retry


def test_to_proto_without_retry_leaves_it_unset() -> None:
    @step(idempotency="natural")
    def f(ctx: Any, input: Any) -> Any:
        return None

    definition = StepDefinition.of(f)
    assert definition is not None
    assert not definition.to_proto().HasField("retry")
