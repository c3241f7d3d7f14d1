"""A list of any length: loaded a page at a time, "n of TOTAL" under it, the cursor on its item.

    table = PagedTable(COLUMNS, load, key=lambda run: run.id, row=run_row, id="runs")
    ...
    await self.attempt(table.reload(), polling=True)   # in the screen's poll()
    run = table.selected_item                          # what an action acts on (or None)

`load(token, size)` returns a `client.Page`. The first page comes with `reload()`; the next
ones when the cursor reaches the last row (arrow, PgDn, End) or the view scrolls to it.
A refresh (`reload()` again) reads again as many rows as are loaded, so nothing the operator
paged to disappears. Free text from `/` filters the rows shown (`set_text_filter`); terms
the server understands belong in `load`, which the screen rebuilds when its query changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from console.client import Page
from console.filtering import Query
from console.live_table import LiveTable
from console.render import Row

Item = TypeVar("Item")
Loader = Callable[[str, int], Awaitable[Page]]

# The most rows one call asks for when a refresh reads the loaded rows again.
MAX_PAGE = 1000
# Load the next page when the cursor is this close to the last row.
NEAR_END_ROWS = 3


class _Rows(LiveTable):
    """The table inside: asks its PagedTable for more when the cursor nears the end."""

    def watch_cursor_coordinate(self, old: Any, new: Any) -> None:
        super().watch_cursor_coordinate(old, new)
        if isinstance(self.parent, PagedTable):
            # Only the operator's moves ask for more: not the table rebuilding itself.
            if not self._restoring and new.row >= self.row_count - NEAR_END_ROWS > 0:
                self.parent.want_more()
            self.parent._show_count()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        # The mouse wheel scrolls without moving the cursor: the end in view asks for more.
        near_end = new_value >= self.max_scroll_y - NEAR_END_ROWS
        if new_value > old_value and near_end and not self._restoring:
            self._want_more()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._want_more()

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self._want_more()

    def action_scroll_end(self) -> None:
        super().action_scroll_end()
        self._want_more()

    def _want_more(self) -> None:
        if isinstance(self.parent, PagedTable):
            self.parent.want_more()


class PagedTable(Vertical, Generic[Item]):
    """A LiveTable of the items `load` pages through, and the line that counts them."""

    DEFAULT_CSS = """
    PagedTable { height: 1fr; }
    PagedTable > LiveTable { height: 1fr; }
    PagedTable > .count { height: 1; padding: 0 1; color: $text-muted; }
    """

    def __init__(
        self,
        columns: tuple[str, ...],
        load: Loader,
        *,
        key: Callable[[Item], str],
        row: Callable[[Item], Row],
        page_size: int = 100,
        noun: str = "rows",
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._table = _Rows(columns, id=f"{id}-table" if id else None)
        self._load = load
        self._key = key
        self._row = row
        self.page_size = page_size
        self.noun = noun
        self.items: dict[str, Item] = {}
        self.next_token = ""
        # The total the server (or the screen, with `set_total`) gave; None: unknown.
        self.total: int | None = None
        self._query = Query()
        self._lock = asyncio.Lock()
        self._loaded_once = False
        self._more_wanted = False

    def compose(self) -> ComposeResult:
        yield self._table
        yield Static("", classes="count", markup=False)

    @property
    def table(self) -> LiveTable:
        return self._table

    def focus(self, scroll_visible: bool = True) -> PagedTable[Item]:
        self._table.focus(scroll_visible)
        return self

    # -- what the screen asks ----------------------------------------------------------------

    @property
    def selected_item(self) -> Item | None:
        """The item the operator aims at, None when there is none or it vanished."""
        key = self._table.selected_key
        return self.items.get(key) if key is not None else None

    @property
    def vanished_key(self) -> str | None:
        return self._table.vanished_key

    @property
    def keys(self) -> list[str]:
        return self._table.keys

    @property
    def loaded(self) -> bool:
        """Whether a first page has come back."""
        return self._loaded_once

    def set_loader(self, load: Loader) -> None:
        """A new query for the server: forget what is loaded; the next reload starts over."""
        self._load = load
        self._table.forget_aim()
        self.items = {}
        self.next_token = ""
        self.total = None
        self._loaded_once = False

    def set_total(self, total: int | None) -> None:
        self.total = total
        self._show_count()

    def set_text_filter(self, query: Query) -> None:
        self._query = query
        self._table.forget_aim()
        self._show_rows()

    async def reload(self) -> None:
        """Read again from the first row as many rows as are loaded (at least one page).

        Raises:
            ConsoleError: the call failed; what was shown stays shown.
        """
        async with self._lock:
            wanted = max(self.page_size, len(self.items))
            fetched: dict[str, Item] = {}
            token = ""
            total: int | None = None
            while True:
                size = min(MAX_PAGE, max(self.page_size, wanted - len(fetched)))
                page = await self._load(token, size)
                fetched.update((self._key(item), item) for item in page.items)
                token = page.next_token
                total = page.total if page.total is not None else total
                if not token or len(fetched) >= wanted:
                    break
            self.items = fetched
            self.next_token = token
            if total is not None:
                self.total = total
            elif not token:
                self.total = len(fetched)
            self._loaded_once = True
            self._show_rows()

    async def load_more(self) -> bool:
        """The next page, after the rows loaded; False when there is none."""
        async with self._lock:
            if not self.next_token:
                return False
            page = await self._load(self.next_token, self.page_size)
            self.items.update((self._key(item), item) for item in page.items)
            self.next_token = page.next_token
            if page.total is not None:
                self.total = page.total
            elif not page.next_token:
                self.total = len(self.items)
            self._show_rows()
            return True

    def want_more(self) -> None:
        """Load the next page in the background, once, if there is one."""
        if not self.next_token or self._more_wanted or not self.is_attached:
            return
        self._more_wanted = True
        self.run_worker(self._more_in_background(), group="more")

    async def _more_in_background(self) -> None:
        try:
            attempt = getattr(self.screen, "attempt", None)
            if attempt is not None:
                await attempt(self.load_more())
            else:
                await self.load_more()
        finally:
            self._more_wanted = False

    # -- drawing -----------------------------------------------------------------------------

    def _show_rows(self) -> None:
        rows = [(key, self._row(item)) for key, item in self.items.items()]
        if not self._query.empty:
            rows = [(key, cells) for key, cells in rows if self._query.matches(cells)]
        self._table.show(rows)
        self._show_count(len(rows))

    def _show_count(self, shown: int | None = None) -> None:
        # query, not query_one: the table may be on its way out with its screen.
        for line in self.query(".count").results(Static):
            line.update(self.count_line(shown))

    def count_line(self, shown: int | None = None) -> str:
        """`120 of 4000 dead letters · PgDn loads more`, or what a text filter kept."""
        loaded = len(self.items)
        if not self._loaded_once:
            return "loading…"
        total = f"{self.total}" if self.total is not None else f"{loaded}+"
        line = f"{loaded} of {total} {self.noun}"
        if self.next_token:
            line += " · PgDn loads more"
        if not self._query.empty and self._query.text:
            kept = shown if shown is not None else len(self._table.keys)
            line = f"{kept} match “{self._query.text}” · " + line
        if (gone := self._table.vanished_key) is not None:
            line += f" · {gone} is gone: move the cursor to pick another"
        return line
