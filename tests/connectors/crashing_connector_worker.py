"""`surefoot connectors worker`, except that it dies the moment it has recorded an outcome.

The crash the outcome records exist for, made exact: the call was made and its outcome is
recorded by the control plane, but the worker dies (SIGKILL) before it reports the result.

    python crashing_connector_worker.py ADDRESS
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import grpc
from surefoot_connectors import ConnectorRuntime, OutcomeRecords
from surefoot_connectors.secrets import Secrets
from surefoot_connectors.worker import serve


class _DieOnceRecorded(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        answer = continuation(details, request)
        if details.method.endswith("/CompleteCall") and answer.result().recorded:
            os.kill(os.getpid(), signal.SIGKILL)
        return answer


def main(address: str) -> int:
    channel = grpc.intercept_channel(grpc.insecure_channel(address), _DieOnceRecorded())
    return serve(ConnectorRuntime(Secrets.load(), OutcomeRecords(address, channel=channel)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
