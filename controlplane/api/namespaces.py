"""Namespace names as requests carry them: empty means "default"."""

from __future__ import annotations

import re
from functools import lru_cache

import grpc

from controlplane import errors

DEFAULT = "default"
_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def valid_namespace(name: str) -> bool:
    return bool(_PATTERN.fullmatch(name))


@lru_cache(maxsize=1024)  # every request names one, most the same few; refusals are not kept
def checked_namespace(requested: str) -> str:
    """The namespace a request names; InvalidArgument for a malformed one."""
    namespace = requested or DEFAULT
    if not _PATTERN.fullmatch(namespace):
        raise errors.InvalidArgument.field(
            "namespace", "must be 1-63 lowercase letters, digits, '.', '_' or '-'"
        )
    return namespace


async def namespace_of(context: grpc.aio.ServicerContext, requested: str) -> str:
    return checked_namespace(requested)
