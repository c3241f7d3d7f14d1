"""A DataTable refreshed from the server without losing the operator's place.

The cursor belongs to an item, not to a row number: rows that come and go above it move it
with its item. When the item itself goes (retried by a second operator, resolved), the table
remembers it as `vanished_key` and aims at nothing until the operator moves the cursor, so a
key pressed at that moment is refused instead of acting on the row that slid under it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from console.render import Row


class LiveTable(DataTable[Text]):
    """Rows keyed by an id (a run id, `<run>:<node>`), replaced by `show` on each refresh.

    Cells are plain text: a DataTable reads a str cell as markup, and an error message or a
    JSON array in square brackets is not markup.
    """

    def __init__(self, columns: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._columns = tuple(columns)
        self._rows: dict[str, Row] = {}
        # The key the operator aims at: the row the cursor was last moved to (by a key, a
        # click or `move_cursor`), followed through refreshes; None before any row is shown.
        self._aimed: str | None = None
        self._vanished: str | None = None
        # Set while `show` moves the cursor itself: that is not the operator aiming.
        self._restoring = False
        self._to_top = False

    def on_mount(self) -> None:
        self.add_columns(*self._columns)

    @property
    def keys(self) -> list[str]:
        """The keys of the rows shown, top to bottom."""
        return list(self._rows)

    def cells(self, key: str) -> Row:
        """The cells of the row with `key`, as shown."""
        return self._rows[key]

    @property
    def selected_key(self) -> str | None:
        """The key the operator aims at, when its row is still shown; otherwise None."""
        if self._vanished is not None:
            return None
        keys = self.keys
        if not keys or not 0 <= self.cursor_row < len(keys):
            return None
        return keys[self.cursor_row]

    @property
    def vanished_key(self) -> str | None:
        """The item the cursor was on when a refresh removed it, until the cursor moves."""
        return self._vanished

    def forget_aim(self) -> None:
        """The operator changed what the list is (a filter): the next `show` starts at the top."""
        self._aimed = None
        self._vanished = None
        self._to_top = True

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        if not self._restoring:
            keys = self.keys
            self._aimed = keys[new.row] if 0 <= new.row < len(keys) else None
            self._vanished = None

    def show(self, rows: Sequence[tuple[str, Row]]) -> None:
        """Show `rows` (key, cells), keeping the cursor on the item it was on.

        When the same rows come back in the same order, only changed cells are updated, so
        nothing flickers; otherwise the table is rebuilt and the cursor follows its item.
        """
        keys = [key for key, _ in rows]
        shown_keys = self.keys
        if keys[: len(shown_keys)] == shown_keys:
            # The same rows (maybe with a page more below): change the cells that changed and
            # add the new rows, instead of rebuilding a table of thousands of rows.
            with self.app.batch_update():
                for row, (key, cells) in enumerate(rows[: len(shown_keys)]):
                    shown = self._rows[key]
                    for column, (old, new) in enumerate(zip(shown, cells, strict=True)):
                        if old != new:
                            self.update_cell_at(
                                Coordinate(row, column), Text(new), update_width=True
                            )
                    self._rows[key] = cells
                for key, cells in rows[len(shown_keys) :]:
                    self.add_row(*(Text(cell) for cell in cells), key=key)
                    self._rows[key] = cells
            self._settle_after_append(keys)
            return
        previous_row = self.cursor_row
        aimed = self._aimed
        self._restoring = True
        try:
            with self.app.batch_update():
                self.clear()
                for key, cells in rows:
                    self.add_row(*(Text(cell) for cell in cells), key=key)
            self._rows = dict(rows)
            if aimed is not None and aimed in self._rows:
                self._vanished = None
                self.move_cursor(row=keys.index(aimed), animate=False)
                return
            if aimed is not None:
                self._vanished = aimed
            if keys:
                row = 0 if self._to_top else min(previous_row, len(keys) - 1)
                self.move_cursor(row=row, animate=False)
                if aimed is None:
                    self._aimed = keys[self.cursor_row]
        finally:
            self._restoring = False
            self._to_top = False

    def _settle_after_append(self, keys: list[str]) -> None:
        # Rows were only added below: the cursor's item did not move. Still, a filter asks
        # for the top, an item that had vanished may be back, a first page needs an aim.
        self._restoring = True
        try:
            if self._to_top and keys:
                self.move_cursor(row=0, animate=False)
                self._aimed = keys[0]
            aimed = self._aimed
            if aimed is not None and self._vanished is not None and aimed in self._rows:
                self._vanished = None
                self.move_cursor(row=keys.index(aimed), animate=False)
            elif aimed is None and keys:
                self._aimed = keys[self.cursor_row]
        finally:
            self._restoring = False
            self._to_top = False
