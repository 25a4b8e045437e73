"""The containers table under a filter: the rows it shows, and that typing in the filter or
clearing it builds no row that was built before (a row's cells do not depend on the filter)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.app import App, ComposeResult

from gpuconsole.backend.models import HostSnapshot
from gpuconsole.ui.widgets import containers_table
from gpuconsole.ui.widgets.containers_table import ContainersTable

from fakes import FakeHost, _c


def snapshot(n: int = 40) -> HostSnapshot:
    host = FakeHost()
    host.containers = [
        _c(f"train-{i}", "busybox:1", "running", "Up 4 minutes", 1000 + i) for i in range(n)
    ] + [_c(f"etl-{i}", "debian:12", "exited", "Exited (0) 2 hours ago", 10 + i) for i in range(5)]
    return host.snapshot()


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ContainersTable()


async def test_filtering_and_clearing_build_no_row_twice(monkeypatch: Any) -> None:
    built: list[str] = []
    real = containers_table.row_cells

    def counting(c: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(c.name)
        return real(c, *args, **kwargs)

    monkeypatch.setattr(containers_table, "row_cells", counting)
    snap = snapshot()
    app = TableApp()
    async with app.run_test(size=(120, 30)) as pilot:
        t = app.query_one(ContainersTable)
        t.apply(snap)
        await pilot.pause()
        everything = t.row_keys
        assert len(built) == 45 and len(everything) == 45
        built.clear()
        for needle in ("t", "tr", "train-1", "etl", ""):
            t.apply(snap, needle)
            await pilot.pause()
            shown = [c.name for c in t.rows_shown.values()]
            assert shown == [
                c.name
                for c in sorted(snap.containers, key=lambda c: -c.created)
                if containers_table.matches(c, needle)
            ]
        assert built == []  # every row was built once, before the filter
        assert t.row_keys == everything
        # A container that changed while filtered out is built again when shown again.
        changed = replace(snap.containers[-1], status="Exited (1) 1 second ago")
        snap2 = replace(snap, containers=(*snap.containers[:-1], changed))
        t.apply(snap2, "train")
        t.apply(snap2, "")
        await pilot.pause()
        assert built == [changed.name]
        row = t.get_row(containers_table.row_key("local", changed.id))
        assert str(row[2]) == "Exited (1) 1 second ago"
