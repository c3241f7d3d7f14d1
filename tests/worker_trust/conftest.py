"""Fixtures of the worker trust tests: the store tests' databases (committer-level tests) and
the end-to-end fixtures of tests/conftest.py (real servers, real worker processes)."""

from tests.store.conftest import database_kind, engine

__all__ = ["database_kind", "engine"]
