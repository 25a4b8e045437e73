"""The containers table's CPU and memory cells: a refresh whose figures did not move formats
none of them again (500 idle containers every 2 s was a third of the table's work at rest),
and a figure that moved still shows its new text — also after the filter hid its row."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.app import App, ComposeResult

from gpuconsole.backend.models import ContainerStats, HostSnapshot
from gpuconsole.ui.widgets import containers_table
from gpuconsole.ui.widgets.containers_table import ContainersTable

from fakes import FakeHost, _c

MIB = 1024 * 1024
GIB = 1024 * MIB


def snapshot(n: int = 30) -> HostSnapshot:
    """A new snapshot object each call, with equal figures: what a quiet refresh hands over."""
    host = FakeHost()
    host.containers = [
        _c(f"train-{i}", "busybox:1", "running", "Up 4 minutes", 1000 + i) for i in range(n)
    ] + [_c("etl-0", "debian:12", "exited", "Exited (0) 2 hours ago", 10)]
    snap = host.snapshot()
    stats = {
        c.id: ContainerStats(c.id, 0.0, (i + 1) * MIB, 4 * GIB)
        for i, c in enumerate(host.containers)
        if c.running
    }
    return replace(snap, stats=stats)


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ContainersTable()


def with_stats(snap: HostSnapshot, cid: str, stats: ContainerStats) -> HostSnapshot:
    return replace(snap, stats={**snap.stats, cid: stats})


async def test_equal_figures_are_not_formatted_again(monkeypatch: Any) -> None:
    formatted: list[str] = []
    real = containers_table.shown_figures

    def counting(c: Any, stats: Any) -> tuple[str, str]:
        formatted.append(c.name)
        return real(c, stats)

    monkeypatch.setattr(containers_table, "shown_figures", counting)
    app = TableApp()
    async with app.run_test(size=(120, 40)) as pilot:
        t = app.query_one(ContainersTable)
        t.apply(snapshot())
        await pilot.pause()
        assert len(formatted) == 31
        formatted.clear()
        t.apply(snapshot())  # a new snapshot, the same figures
        await pilot.pause()
        assert formatted == []

        # One container's memory moved: it alone is formatted, and its cell shows it.
        snap = snapshot()
        moved = snap.containers[3]
        t.apply(with_stats(snap, moved.id, ContainerStats(moved.id, 12.5, 2 * GIB, 4 * GIB)))
        await pilot.pause()
        assert formatted == [moved.name]
        row = t.get_row(containers_table.row_key("local", moved.id))
        assert (str(row[3]), str(row[4])) == ("12.5%", "2.0 GiB / 4.0 GiB")

        # Hidden by the filter while its figures move back: shown again with the new text.
        formatted.clear()
        t.apply(snap, "etl")
        await pilot.pause()
        t.apply(snap, "")
        await pilot.pause()
        assert formatted == [moved.name]
        row = t.get_row(containers_table.row_key("local", moved.id))
        expected = containers_table.shown_figures(moved, snap.stats[moved.id])
        assert (str(row[3]), str(row[4])) == expected == ("0.0%", "4.0 MiB / 4.0 GiB")


async def test_a_container_that_stops_shows_no_figures() -> None:
    """Equal raw figures with another running state are not the same text."""
    app = TableApp()
    async with app.run_test(size=(120, 40)) as pilot:
        t = app.query_one(ContainersTable)
        snap = snapshot(3)
        t.apply(snap)
        await pilot.pause()
        first = snap.containers[0]
        stopped = replace(first, state="exited", status="Exited (0) 1 second ago")
        # The stats are still there (read just before it stopped): the cell must not show them.
        t.apply(replace(snap, containers=(stopped, *snap.containers[1:])))
        await pilot.pause()
        row = t.get_row(containers_table.row_key("local", first.id))
        assert (str(row[3]), str(row[4])) == containers_table.shown_figures(
            stopped, snap.stats[first.id]
        )
        assert str(row[3]) != "0.0%"
