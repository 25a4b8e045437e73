"""SVG snapshots of the screens a user sees, from fixed data so the pictures are stable.

Update after an intended change with: scripts/test tests/snapshots --snapshot-update
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.details import DetailsScreen
from gpuconsole.ui.widgets.containers_table import ContainersTable

from fakes import CONTAINERS, FakeHost
from support import host_of

SIZE = (130, 30)


def app_with(host: FakeHost, read_only: bool = False) -> GpuconsoleApp:
    return GpuconsoleApp(host_of(host), read_only=read_only, refresh_seconds=60)


async def wait_rows(pilot: Pilot[Any], select: str | None = None) -> None:
    table = pilot.app.screen.query_one(ContainersTable)
    while table.row_count < len(CONTAINERS):
        await pilot.pause(0.05)
    if select:
        table.select_id(next(c.id for c in CONTAINERS if c.name == select))
    await pilot.pause()


def test_containers_screen(snap_compare: Any) -> None:
    assert snap_compare(app_with(FakeHost()), terminal_size=SIZE, run_before=wait_rows)


def test_details_screen_masks_the_token(snap_compare: Any) -> None:
    async def open_details(pilot: Pilot[Any]) -> None:
        await wait_rows(pilot, "jupyter-ana-1")
        await pilot.press("enter")
        while not isinstance(pilot.app.screen, DetailsScreen):
            await pilot.pause(0.05)
        await pilot.pause(0.3)

    assert snap_compare(app_with(FakeHost()), terminal_size=(130, 40), run_before=open_details)


def test_remove_confirm_dialog_warns_about_missing_volumes(snap_compare: Any) -> None:
    async def ask(pilot: Pilot[Any]) -> None:
        await wait_rows(pilot, "etl-once")
        await pilot.press("d")
        await pilot.pause(0.2)

    assert snap_compare(app_with(FakeHost()), terminal_size=SIZE, run_before=ask)


def test_no_engine_state(snap_compare: Any) -> None:
    async def wait_down(pilot: Pilot[Any]) -> None:
        panel = pilot.app.screen.query_one("#engine-down")
        while not panel.display:
            await pilot.pause(0.05)
        await pilot.pause(0.2)

    host = FakeHost(down=True)
    app = app_with(host)
    assert snap_compare(app, terminal_size=SIZE, run_before=wait_down)


def test_help_in_read_only_mode(snap_compare: Any) -> None:
    async def help_(pilot: Pilot[Any]) -> None:
        await wait_rows(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(
        app_with(FakeHost(), read_only=True), terminal_size=(130, 32), run_before=help_
    )


def _replay_app(limit: int) -> GpuconsoleApp:
    from fakes import H100_RECORDING, SteppedReplay

    source = SteppedReplay(step=1.0, limit=limit)
    app = GpuconsoleApp(
        host_of(FakeHost(), gpu=source),
        refresh_seconds=60,
        gpu_interval=0.02,
        replay_name=H100_RECORDING.name,
    )
    app.test_source = source  # type: ignore[attr-defined]
    return app


async def _all_samples(pilot: Pilot[Any]) -> None:
    source = pilot.app.test_source  # type: ignore[attr-defined]
    await wait_rows(pilot)
    while source.calls < source.limit:
        await pilot.pause(0.05)
    await pilot.pause(0.3)


def test_gpu_panel_with_replayed_h100(snap_compare: Any) -> None:
    # 24 recorded seconds: idle, the 20 GiB allocation, into the bf16 matmul at ~700 W.
    assert snap_compare(_replay_app(24), terminal_size=(130, 24), run_before=_all_samples)


def test_gpu_screen_with_replayed_h100(snap_compare: Any) -> None:
    async def open_gpus(pilot: Pilot[Any]) -> None:
        from textual.widgets import DataTable

        from gpuconsole.ui.screens.gpus import GpuBlock, GpuScreen

        await _all_samples(pilot)
        await pilot.press("g")
        while not isinstance(pilot.app.screen, GpuScreen):
            await pilot.pause(0.05)
        screen = pilot.app.screen
        while not (screen.query(GpuBlock) and screen.query_one(DataTable).row_count):
            await pilot.pause(0.05)
        await pilot.pause(0.3)

    assert snap_compare(_replay_app(40), terminal_size=(130, 30), run_before=open_gpus)
