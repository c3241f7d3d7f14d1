"""JSON given on the command line (`--OPTION JSON` or `--OPTION-file PATH`) as a payload.

Checked locally, so that bad JSON or an unreadable file exits 2 without calling the server.
"""

from __future__ import annotations

import json
import sys

from surefoot.v1 import common_pb2

from controlplane.cli import output
from controlplane.cli.errors import usage_error


def json_payload(text: str | None, path: str | None, option: str) -> common_pb2.Payload | None:
    """The payload of `--OPTION JSON` or `--OPTION-file PATH` (- is stdin); None if neither."""
    if path is not None:
        name = f"--{option}-file {path}"
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise usage_error(f"cannot read {name}: {exc}") from exc
    elif text is not None:
        name = f"--{option}"
    else:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise usage_error(f"{name} is not valid JSON: {exc}") from exc
    data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return common_pb2.Payload(encoding=output.JSON_ENCODING, data=data)
