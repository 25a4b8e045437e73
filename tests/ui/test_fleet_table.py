"""A fleet's table: one host's refresh redraws what changed on that host, nothing else."""

from __future__ import annotations

from textual.app import App, ComposeResult

from gpuconsole.backend.models import (
    ContainerStats,
    ContainerSummary,
    EngineState,
    HostSnapshot,
    HostStatus,
)
from gpuconsole.ui.widgets.containers_table import ContainersTable, HostRows

HOSTS = ("alpha", "beta")


def snapshot(host: str, cpu: dict[int, float] | None = None, n: int = 12) -> HostSnapshot:
    """A fresh snapshot (new objects every call, as every refresh brings)."""
    cpu = cpu or {}
    containers = tuple(
        ContainerSummary(
            host,
            f"{host}{i:02d}",
            f"{host}-box-{i}",
            "busybox",
            "running",
            "Up 5 minutes",
            1000 + i,
        )
        for i in range(n)
    )
    stats = {
        c.id: ContainerStats(c.id, cpu.get(i, 0.5), 4 << 20, 1 << 30)
        for i, c in enumerate(containers)
    }
    return HostSnapshot(HostStatus(host, "unix://x", EngineState.UP), containers, stats)


class FleetApp(App[None]):
    CSS = "ContainersTable { height: 1fr; }"

    def compose(self) -> ComposeResult:
        yield ContainersTable(id="t")


def shown(t: ContainersTable) -> str:
    return "\n".join(t.render_line(y).text for y in range(t.size.height))


async def test_a_host_refresh_redraws_only_its_changed_rows() -> None:
    app = FleetApp()
    async with app.run_test(size=(150, 30)) as pilot:
        t = app.query_one(ContainersTable)
        snaps = {h: snapshot(h) for h in HOSTS}
        t.apply([HostRows(h, snaps[h]) for h in HOSTS])
        await pilot.pause()
        assert "alpha-box-11" in shown(t) and "beta-box-11" in shown(t)
        built = t.strips_built

        # beta refreshes with the same figures: nothing is redrawn.
        snaps["beta"] = snapshot("beta")
        t.apply([HostRows(h, snaps[h]) for h in HOSTS])
        await pilot.pause()
        assert t.strips_built == built

        # beta's box 3 is busy: that one row is redrawn, with its new figure.
        snaps["beta"] = snapshot("beta", cpu={3: 97.0})
        t.apply([HostRows(h, snaps[h]) for h in HOSTS])
        await pilot.pause()
        assert t.strips_built - built == 1
        key = t.key_of("beta03", "beta")
        assert key is not None and "97" in str(t.get_row(key))

        # alpha stops answering: its rows (only) are greyed with the note.
        t.apply(
            [
                HostRows("alpha", snaps["alpha"], stale="engine not answering for 6 s"),
                HostRows("beta", snaps["beta"]),
            ]
        )
        await pilot.pause()
        assert "engine not answering for 6 s" in str(t.get_row(t.key_of("alpha00", "alpha") or ""))
        assert "not answering" not in str(t.get_row(t.key_of("beta00", "beta") or ""))
