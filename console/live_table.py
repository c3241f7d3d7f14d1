"""A DataTable refreshed from the server every second without losing the operator's place."""

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
        """The key of the row under the cursor, or None when the table is empty."""
        keys = self.keys
        if not keys or not 0 <= self.cursor_row < len(keys):
            return None
        return keys[self.cursor_row]

    def show(self, rows: Sequence[tuple[str, Row]]) -> None:
        """Show `rows` (key, cells), keeping the cursor on the row it was on.

        When the same rows come back in the same order, only changed cells are updated, so
        nothing flickers; otherwise the table is rebuilt and the cursor follows its row's key.
        """
        keys = [key for key, _ in rows]
        if keys == self.keys:
            with self.app.batch_update():
                for row, (key, cells) in enumerate(rows):
                    shown = self._rows[key]
                    for column, (old, new) in enumerate(zip(shown, cells, strict=True)):
                        if old != new:
                            self.update_cell_at(
                                Coordinate(row, column), Text(new), update_width=True
                            )
                    self._rows[key] = cells
            return
        selected = self.selected_key
        with self.app.batch_update():
            self.clear()
            for key, cells in rows:
                self.add_row(*(Text(cell) for cell in cells), key=key)
        self._rows = dict(rows)
        if selected in keys:
            self.move_cursor(row=keys.index(selected), animate=False)
