"""Worker module of the soak: the payment step and the plain step of the end-to-end tests.

`e2e-charge` charges through the payment stand-in with the attempt's idempotency key;
`e2e-work` reserves and ships (sleeping a little, so that kills find attempts in flight).
Imported by the worker subprocesses only (`surefoot worker tests/soak/soak_steps.py`).
"""

from __future__ import annotations

from tests.support.payment_steps import charge
from tests.support.steps import work

__all__ = ["charge", "work"]
