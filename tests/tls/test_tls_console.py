"""The console over TLS: it lists the runs when it trusts the server's CA; pointed at the
same server in plaintext it says the control plane is unreachable, in its status line."""

from __future__ import annotations

import asyncio

from console.app import SurefootConsole
from console.client import ControlPlane
from console.live_table import LiveTable
from tests.console.console_support import SIZE, text_of, until
from tests.support.runs import register, start_run
from tests.support.workflows import three_steps
from tests.tls.tls_support import TlsControlPlane


def test_the_console_lists_runs_over_tls(control_plane: TlsControlPlane) -> None:
    register(control_plane.stub, three_steps("console-tls"))
    run_id = start_run(control_plane.stub, "console-tls", {"trail": []})

    async def scenario() -> None:
        app = SurefootConsole(ControlPlane(control_plane.connection(), "default"))
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(LiveTable)
            await until(pilot, lambda: run_id in table.keys, "the run is listed")
            assert "connected" in text_of(app, "#connection")

        plaintext = SurefootConsole(ControlPlane(control_plane.address, "default"))
        async with plaintext.run_test(size=SIZE) as pilot:
            await until(
                pilot, lambda: "unreachable" in text_of(plaintext, "#connection"), "refused"
            )
            assert plaintext.screen.query_one(LiveTable).keys == []

    asyncio.run(scenario())
