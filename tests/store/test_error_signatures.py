"""Error signatures: what varies between the failures of one incident is taken out, what
names the failure stays."""

from __future__ import annotations

import pytest

from controlplane.store.error_signatures import MAX_SIGNATURE, error_signature


@pytest.mark.parametrize(
    ("message", "signature"),
    [
        (
            "charge req_81f2c9a0 for cus_0042 of 1250 failed: HTTP 503 at 2026-12-06T02:26:29Z",
            "charge <id> for <id> of <n> failed: HTTP <n> at <time>",
        ),
        ("HTTP Error 503: Service Unavailable", "HTTP Error <n>: Service Unavailable"),
        (
            "request 3fa85f64-5717-4562-b3fc-2c963f66afa6 timed out after 30.5s",
            "request <id> timed out after <n>s",
        ),
        (
            "hash deadbeef12 at 0x7ffe, order-8812 amount -12.50",
            "hash <hex> at <hex>, <id> amount <n>",
        ),
        ("ORD12345 rejected at 12:01:02.5", "<id> rejected at <time>"),
        ("b: card 4242 declined", "b: card <n> declined"),
        # Names with digits name things, not runs: they stay.
        ("e2e-charge failed in step2 (v2)", "e2e-charge failed in step2 (v2)"),
        ("  two\n  lines  ", "two lines"),
        ("", ""),
    ],
)
def test_a_signature_normalises_what_varies_and_keeps_the_wording(
    message: str, signature: str
) -> None:
    assert error_signature(message) == signature


def test_one_outage_is_one_signature_and_another_error_is_another() -> None:
    outage = {
        error_signature(
            f"charge req_{i:08x}a for cus_{i} of {i * 7} failed: HTTP 503 at "
            f"2026-12-06T02:{i % 60:02d}:00Z"
        )
        for i in range(1000)
    }
    assert len(outage) == 1
    assert error_signature("card 4242 declined") not in outage


def test_a_signature_is_bounded() -> None:
    assert len(error_signature("word " * 1000)) == MAX_SIGNATURE
