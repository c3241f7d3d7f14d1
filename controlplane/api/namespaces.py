"""Namespace names as requests carry them: empty means "default"."""

from __future__ import annotations

import re

import grpc

from controlplane.api.errors import invalid_field

DEFAULT = "default"
_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


async def namespace_of(context: grpc.aio.ServicerContext, requested: str) -> str:
    namespace = requested or DEFAULT
    if not _PATTERN.match(namespace):
        await invalid_field(
            context, "namespace", "must be 1-63 lowercase letters, digits, '.', '_' or '-'"
        )
    return namespace
