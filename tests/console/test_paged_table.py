"""A list of 4,000 dead letters, a page at a time (from the fixed data of the fake control
plane): the end of the list loads the next page, every row is reachable, a refresh keeps what
was loaded and the cursor on its item, and free text filters what is shown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from console.filtering import Query, parse_query
from console.screens.dead_letter_group import GroupScreen
from tests.console.console_support import until
from tests.console.fake_control_plane import GROUPS, FakeControlPlane, ScreenApp


def test_every_row_of_a_long_list_is_reached_a_page_at_a_time() -> None:
    async def scenario() -> None:
        app = ScreenApp(FakeControlPlane(), lambda cp: GroupScreen(cp, GROUPS[0]))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            assert isinstance(screen, GroupScreen)
            items = screen.items
            await until(pilot, lambda: len(items.keys) == 100, "the first page")
            assert items.count_line() == "100 of 4000 dead letters · PgDn loads more"

            await pilot.press("end")
            await until(pilot, lambda: len(items.keys) == 200, "end loads the next page")

            def rows(count: int) -> Callable[[], bool]:
                return lambda: len(items.keys) == count

            for pages in range(3, 41):
                await pilot.press("end")
                await until(pilot, rows(100 * pages), f"page {pages}")
            assert items.count_line() == "4000 of 4000 dead letters"
            assert items.keys[-1] == "run-3999:charge"

            # A refresh reads the 4,000 again (in pages of 1,000) and the cursor stays put.
            items.table.move_cursor(row=2500)
            await items.reload()
            assert len(items.keys) == 4000 and items.table.selected_key == "run-2500:charge"

            items.set_text_filter(Query(text="cus_0042"))
            assert items.keys == ["run-0042:charge"]
            assert items.count_line() == "1 match “cus_0042” · 4000 of 4000 dead letters"
            assert items.table.selected_key == "run-0042:charge", "a filter starts at the top"

    asyncio.run(scenario())


def test_a_filter_is_free_text_and_known_terms() -> None:
    query = parse_query("acme status:needs_attention,waiting workflow:checkout@2 step:charge")
    assert query.text == "acme"
    assert query.statuses == ("NEEDS_ATTENTION", "WAITING")
    assert (query.workflow_name, query.workflow_version, query.step) == ("checkout", "2", "charge")
    assert parse_query("HTTP 503 at 12:00").text == "HTTP 503 at 12:00"
    assert str(parse_query("workflow:checkout  x")) == "x workflow:checkout"
    assert Query(text="503 cus_1").matches(["charge", "HTTP 503 for cus_1"])
    assert not Query(text="503 cus_2").matches(["charge", "HTTP 503 for cus_1"])
