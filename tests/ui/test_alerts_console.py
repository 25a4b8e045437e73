"""Alerts in the console (Pilot): a notification, the ``!`` panel with its history, the table's
idle-reservation flag. Engine, containers, attribution (their real cgroups) and the NVML source
are real; the GPU is the NVML stand-in, and the NVIDIA runtime this engine lacks (a running
container cannot hold a DeviceRequest here) is stood in for by a label read as ``--gpus``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from gpuconsole.backend.gpu.nvml_source import NvmlSource
from gpuconsole.backend.gpu.nvml_standin import StandInNvml, h100_devices
from gpuconsole.settings.config import AlertSettings
from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.alerts import AlertsScreen
from gpuconsole.ui.screens.containers import ContainersScreen
from gpuconsole.ui.widgets.containers_table import ContainersTable

from support import GpusFromLabel, host_at
from uihelpers import until

GIB = 1024**3
#: The label the stand-in runtime reads as ``--gpus device=...``.
GPUS_LABEL = "gpct-alerts.gpus"
MINE = {"gpct-alerts": "1"}


def notes(app: GpuconsoleApp) -> list[Any]:
    return list(app._notifications)


def cells(table: DataTable[Any], row: int) -> list[str]:
    return [c.plain if isinstance(c, Text) else str(c) for c in table.get_row_at(row)]


async def test_a_hot_gpu_notifies_and_fills_the_alerts_panel_in_read_only_mode() -> None:
    devices = h100_devices(1)  # 74 °C, as the recorded H100 under load
    app = GpuconsoleApp(
        host_at(gpu=NvmlSource(nvml=StandInNvml(devices))),
        read_only=True,  # alerts change nothing: a read-only console sees them too
        gpu_interval=0.05,
        alerts=AlertSettings(),
    )
    async with app.run_test(size=(150, 40)) as pilot:
        await until(pilot, lambda: app.gpu_view is not None, what="a GPU sample")
        await pilot.pause(0.3)
        assert app.alert_log.history == ()
        devices[0].temperature_c = 87
        await until(
            pilot,
            lambda: any(n.title == "GPU temperature" for n in notes(app)),
            what="the temperature notification",
        )
        (note,) = [n for n in notes(app) if n.title == "GPU temperature"]
        assert note.severity == "error"
        assert note.message == "GPU 0 on local is at 87 °C (alert at 85 °C)"

        await pilot.press("exclamation_mark")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen), what="the alerts panel")
        screen = app.screen
        title = str(screen.query_one("#alerts-title").render())
        assert "1 live, 1 in the history" in title
        live = screen.query_one("#alerts-live", DataTable)
        _since, kind, about, message = cells(live, 0)  # one host: no host column
        assert (kind, about, message) == ("GPU temperature", "GPU 0", note.message)
        history = screen.query_one("#alerts-history", DataTable)
        assert cells(history, 0)[1:] == ["raised", "GPU temperature", note.message]

        # It cools down while the panel is open: the panel follows, newest first.
        devices[0].temperature_c = 70
        await until(pilot, lambda: history.row_count == 2, what="the clear in the history")
        assert cells(history, 0)[1:3] == ["cleared", "GPU temperature"]
        assert cells(history, 1)[1] == "raised"
        assert cells(live, 0)[1] == "none"
        assert any(n.title == "GPU temperature — over" for n in notes(app))

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ContainersScreen), what="esc")


async def test_an_idle_reservation_is_flagged_in_the_table_until_the_gpu_works(
    make_container: Any, tmp_path: Path
) -> None:
    holder = make_container(labels={**MINE, GPUS_LABEL: "0"})
    other = make_container(labels=MINE)
    devices = h100_devices(1)
    devices[0].util_gpu = 1
    devices[0].processes = [(holder.attrs["State"]["Pid"], 2 * GIB)]
    host = host_at(gpu=NvmlSource(nvml=StandInNvml(devices), process_interval=0.1))
    host.engine = GpusFromLabel(host.engine, GPUS_LABEL)
    config = tmp_path / "config.toml"
    config.write_text("[alerts]\nidle_minutes = 0.02\n")  # 1.2 s
    app = GpuconsoleApp(host, gpu_interval=0.05, refresh_seconds=0.5, config_path=config)
    assert app.alert_settings.idle_minutes == 0.02
    async with app.run_test(size=(170, 40)) as pilot:
        table = app.screen.query_one(ContainersTable)

        def gpus_cell(cid: str) -> str:
            cell = table.row_of(cid)[5]
            return cell.plain if isinstance(cell, Text) else str(cell)

        await until(
            pilot,
            lambda: holder.id in table.containers and "⚠ idle" in gpus_cell(holder.id),
            timeout=20,
            what="the idle flag on the holder's row",
        )
        assert gpus_cell(holder.id).startswith("0 ⚠ idle ")
        assert "⚠" not in gpus_cell(other.id)
        (note,) = [n for n in notes(app) if n.title == "Idle GPU reservation"]
        assert note.severity == "warning"
        assert note.message.startswith(
            f"{holder.name} on local reserved GPU 0 and kept it under 5 % utilization for "
        )
        # Minute steps: the samples that keep coming leave the flag's text (and its row's
        # cached strip, as far as the flag goes) alone.
        flag = gpus_cell(holder.id)
        assert flag == "0 ⚠ idle <1m"
        await pilot.pause(1.0)
        assert gpus_cell(holder.id) == flag

        devices[0].util_gpu = 93  # the holder's GPU works: the flag goes
        await until(pilot, lambda: gpus_cell(holder.id) == "0", what="the flag to go from the row")
        assert any(n.message == f"{holder.name} on local uses its GPUs again" for n in notes(app))
        await pilot.press("exclamation_mark")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen))
        history = app.screen.query_one("#alerts-history", DataTable)
        assert [cells(history, i)[1] for i in range(history.row_count)] == ["cleared", "raised"]
        assert cells(history, 1)[2] == "Idle GPU reservation"


async def test_alert_text_is_shown_as_written_never_as_markup() -> None:
    """A driver's or a command's words may hold brackets: toast and panel show them as they are."""
    from gpuconsole.monitor.alerts import Alert, AlertKind, AlertSeverity
    from gpuconsole.ui.messages import AlertNotice

    from fakes import FakeHost
    from support import host_of

    said = "GPU telemetry on local stalled: nvidia-smi said [N/A] [/bold] [red]"
    stalled = Alert(AlertKind.DRIVER, AlertSeverity.ERROR, "local", said, 1.0, 2.0, True)
    app = GpuconsoleApp(host_of(FakeHost()), refresh_seconds=60, alerts=AlertSettings())
    async with app.run_test(size=(150, 40)) as pilot:
        app.post_message(AlertNotice(stalled))
        await until(pilot, lambda: any(n.message == said for n in notes(app)), what="the toast")
        (note,) = [n for n in notes(app) if n.message == said]
        assert (note.title, note.severity, note.markup) == ("GPU telemetry", "error", False)
        await pilot.press("exclamation_mark")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen))
        history = app.screen.query_one("#alerts-history", DataTable)
        assert cells(history, 0)[1:] == ["raised", "GPU telemetry", said]
        live = app.screen.query_one("#alerts-live", DataTable)
        assert cells(live, 0)[1:] == ["GPU telemetry", "telemetry", said]


def test_the_idle_flag_moves_in_minute_steps() -> None:
    from gpuconsole.ui.alert_text import short_duration

    assert [short_duration(s) for s in (0, 59.9, 60, 17 * 60 + 59, 2 * 3600 + 300, 3 * 86400)] == [
        "<1m",
        "<1m",
        "1m",
        "17m",
        "2h05m",
        "3d00h",
    ]
