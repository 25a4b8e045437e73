"""A DataTable whose cell updates repaint only the rows that changed.

DataTable.update_cell bumps one table-wide counter that every render cache is keyed on, so one
changed figure (a container's memory moving by 4 KiB) re-renders every visible cell of every
row, which at rest was most of the console's CPU (py-spy, 100 containers: 84 % of the process
in DataTable.render_line). Here an update evicts only the changed rows' cache entries and
refreshes only their lines; a wider value than its column still goes the stock way, since a
column width change moves every row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.text import Text
from textual.render import measure
from textual.widgets import DataTable
from textual.widgets._data_table import RowKey, default_cell_formatter

Cell = str | Text
Cells = tuple[Cell, ...]


class DiffTable(DataTable[Cell]):
    """Rows keyed by string, put in whole; only the cells that differ are written."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Row key -> the cells last shown (compared before anything is written).
        self._cells: dict[str, Cells] = {}

    def column_keys(self) -> list[str]:
        return [str(column.key.value) for column in self.ordered_columns]

    def put_rows(self, rows: Mapping[str, Cells]) -> bool:
        """Show exactly ``rows`` (in the table's current order for the ones already there, new
        ones appended); returns whether rows were added (which may need ordering)."""
        added = False
        for gone in [key for key in self._cells if key not in rows]:
            self.remove_row(gone)
            del self._cells[gone]
        updates: list[tuple[str, int, Cell]] = []
        for key, cells in rows.items():
            old = self._cells.get(key)
            if old is None:
                self.add_row(*cells, key=key)
                added = True
            elif old != cells:
                updates.extend(
                    (key, i, new)
                    for i, (new, was) in enumerate(zip(cells, old, strict=True))
                    if new != was
                )
            self._cells[key] = cells
        if updates:
            self.set_cells(updates)
        return added

    def forget_rows(self) -> None:
        """Clear the table and what it remembers of its rows."""
        self.clear()
        self._cells.clear()

    def set_cells(self, updates: Iterable[tuple[str, int, Cell]]) -> None:
        """Write cells given as (row key, column index, value), repainting only their rows."""
        columns = self.ordered_columns
        rows: set[RowKey] = set()
        wider = False
        console = self.app.console
        for key, index, value in updates:
            row_key, column = RowKey(key), columns[index]
            self._data[row_key][column.key] = value
            rows.add(row_key)
            width = measure(console, default_cell_formatter(value, wrap=False, height=1), 1)
            if width > column.content_width:
                column.content_width = width
                wider = True
        if not rows:
            return
        if wider:
            # Every row moves: the stock path (one table-wide invalidation and a new layout).
            self._update_count += 1
            self._require_update_dimensions = True
            self.refresh()
            return
        self._evict(rows)
        for row_key in rows:
            location = self._row_locations.get(row_key)
            if location is not None:
                self.refresh_row(location)

    def _evict(self, rows: set[RowKey]) -> None:
        """Drop the render caches of ``rows`` only (their keys start with the row key; the
        renderables cache is keyed by row index; lines are cheap to rebuild from rows)."""
        cell_cache, row_cache = self._cell_render_cache, self._row_render_cache
        for cell_key in [k for k in list(cell_cache.keys()) if k[0] in rows]:
            cell_cache.discard(cell_key)
        for row_key in [k for k in list(row_cache.keys()) if k[0] in rows]:
            row_cache.discard(row_key)
        indices = {self._row_locations.get(key) for key in rows}
        for cache_key in [k for k in list(self._row_renderable_cache.keys()) if k[1] in indices]:
            self._row_renderable_cache.discard(cache_key)
        self._line_cache.clear()
