"""The fuzz tests' servers (one per kind for the whole package) and their hypothesis settings.

Under CI the search is derandomized: the same few thousand requests every build, so a red
build is this change's doing and replays locally with `CI=1`. Elsewhere each run draws new
ones, and hypothesis's example database replays a failure found before. The whole package
makes about 3,300 calls and 100 worker streams in about a minute on a 2-core machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tests.fuzz.bases import DEFINITION_NAME, registered_names, valid_requests
from tests.fuzz.messages import MessageStrategies
from tests.fuzz.seed import Seeded
from tests.fuzz.target import VIEWER_TOKEN, Target, bearer, fuzz_target, request_class
from tests.support.processes import PROCESSES

IN_CI = bool(os.environ.get("CI"))
# A longer search on demand: SUREFOOT_FUZZ_SCALE=20 sends twenty times as many requests.
SCALE = max(1, int(os.environ.get("SUREFOOT_FUZZ_SCALE", "1")))


def fuzz_settings(max_examples: int) -> settings:
    # CI keeps no example database: derandomized runs need none.
    return settings(
        settings(database=None) if IN_CI else settings(),
        max_examples=max_examples * SCALE,
        derandomize=IN_CI,
        # A request's time is the server's, on a shared 2-core machine: no per-example limit.
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
        # No shrinking: the failing request is printed as found; shrinking it against a
        # live server would take minutes of requests.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )


@pytest.fixture(scope="package")
def trusting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A seeded server without credentials (every caller trusted), fuzzed anonymously."""
    with fuzz_target(tmp_path_factory.mktemp("fuzz-trusting"), auth=False) as target:
        yield target


@pytest.fixture(scope="package")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A seeded server with an auth file, fuzzed with a token that may only read `default`."""
    directory = tmp_path_factory.mktemp("fuzz-viewer")
    with fuzz_target(directory, auth=True, metadata=bearer(VIEWER_TOKEN)) as target:
        yield target


@pytest.fixture(scope="package")
def requests(trusting: Target) -> Requests:
    """Requests aimed at what the trusting server holds."""
    return Requests(trusting.seeded)


class Requests:
    """Requests of any RPC: generated from nothing, or near a valid one."""

    def __init__(self, seeded: Seeded) -> None:
        self.messages = MessageStrategies(seeded.known, {DEFINITION_NAME: registered_names()})
        self.bases = valid_requests(seeded)

    def of(self, method: str) -> st.SearchStrategy[Message]:
        anything = self.messages.of(request_class(method))
        bases = self.bases.get(method)
        if not bases:
            return anything
        return anything | self.messages.near(bases) | self.messages.near(bases)


@pytest.fixture(autouse=True)
def _show_server_output_on_failure(request: pytest.FixtureRequest) -> None:
    """A failing test's report shows what its fuzzed server said."""
    for name in ("trusting", "viewer"):
        if name in request.fixturenames:
            target = request.getfixturevalue(name)
            request.node.stash[PROCESSES] = target.control_plane.registry
