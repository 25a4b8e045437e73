"""The GPU panel, the GPU screen and the GPU mem column, fed by the recorded H100 data (there is
no GPU here) and, for attribution, by real container PIDs on the real engine."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from gpuconsole.backend.gpu import GpuProcess, GpuSample, GpuSnapshot, GpuSourceState
from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.gpus import GpuScreen
from gpuconsole.ui.widgets.containers_table import ContainersTable
from gpuconsole.ui.widgets.gpu_card import GpuCard, card_text
from gpuconsole.ui.widgets.time_graph import TimeGraph

from fakes import H100_RECORDING, StaticGpuSource, SteppedReplay
from support import host_at
from uihelpers import text_of, until

GIB = 1024**3


async def test_panel_moves_through_the_recorded_phases() -> None:
    # 30 samples a second apart: idle, the 20 GiB allocation, then the bf16 matmul at ~700 W.
    source = SteppedReplay(step=1.0, limit=30)
    app = GpuconsoleApp(
        host_at(gpu=source),
        gpu_interval=0.02,
        replay_name=H100_RECORDING.name,
    )
    async with app.run_test(size=(140, 40)) as pilot:
        await until(
            pilot,
            lambda: (
                source.calls >= 30
                and app.gpu_view is not None
                and len(app.gpu_view.series(app.gpu_view.snapshot.gpus[0].uuid, "power_w")) == 30
            ),
            what="30 samples",
        )
        await pilot.pause(0.2)
        view = app.gpu_view
        gpu = view.snapshot.gpus[0]
        powers = view.series(gpu.uuid, "power_w")
        assert min(p for p in powers if p is not None) < 80  # idle ~77 W
        assert max(p for p in powers if p is not None) > 690  # matmul ~700 W
        assert max(view.series(gpu.uuid, "utilization_gpu_percent")) >= 99
        card = app.screen.query_one(GpuCard)
        text = text_of(card.render(), 140)  # what the card on screen shows
        assert "GPU 0 H100 80GB HBM3" in text
        assert "/ 700 W" in text and "/ 79.6 GiB" in text
        assert "█" in text  # the sparklines climbed with the load
        status = text_of(app.screen.query_one("#gpu-status", Static).content)
        assert "REPLAY" in status and H100_RECORDING.name in status


async def test_gpu_screen_graphs_and_processes() -> None:
    source = SteppedReplay(step=1.0, limit=24)  # ends inside the matmul phase, one process
    app = GpuconsoleApp(
        host_at(gpu=source),
        gpu_interval=0.02,
        replay_name=H100_RECORDING.name,
    )
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: source.calls >= 24, what="24 samples")
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, GpuScreen))
        await pilot.pause(0.3)
        graphs = {g.border_title: g for g in app.screen.query(TimeGraph)}
        assert set(graphs) == {"memory", "power", "utilization"}
        power = text_of(graphs["power"].render(), 60)
        assert "700W" in power and "now" in power and "█" in power
        head = text_of(app.screen.query_one("#gpu-head-0", Static).content)
        assert "fan N/A" in head  # NotSupported on an H100: N/A, never 0
        table = app.screen.query_one("#gpu-processes", DataTable)
        await until(pilot, lambda: table.row_count == 1, what="the recorded process")
        gpu, pid, owner, mem = (str(c) for c in table.get_row_at(0))
        assert (gpu, pid) == ("0", "416") and "recorded" in owner and "GiB" in mem
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, GpuScreen))


async def test_gpu_memory_column_names_the_real_container(make_container) -> None:  # type: ignore[no-untyped-def]
    holder = make_container()
    other = make_container()
    pid = holder.attrs["State"]["Pid"]
    snapshot = GpuSnapshot(
        host="local",
        source="static",
        state=GpuSourceState.OK,
        timestamp=1.0,
        gpus=(GpuSample(0, "GPU-aaaa", "NVIDIA H100 80GB HBM3", 3 * GIB, 80 * GIB),),
        processes=(GpuProcess(pid, 0, "GPU-aaaa", 3 * GIB),),
    )
    app = GpuconsoleApp(host_at(gpu=StaticGpuSource(snapshot)), gpu_interval=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        table = app.screen.query_one(ContainersTable)

        def gpu_mem(cid: str) -> str:
            return str(table.row_of(cid)[6])

        await until(
            pilot,
            lambda: holder.id in table.containers and gpu_mem(holder.id) == "3.0 GiB on 0",
            timeout=20,
            what="the holder's GPU memory",
        )
        assert gpu_mem(other.id) == "-"
        await until(
            pilot,
            lambda: holder.name in text_of(card_text(snapshot.gpus[0], app.gpu_view, 100), 110),
            what="the GPU card to name the holder",
        )
