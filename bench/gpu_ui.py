"""What 8 GPUs at 1 Hz cost the console: the poller's work per sample and the UI's per update.

Run: ``python -m bench.gpu_ui``. The GPU source is NVML against an instant stand-in pynvml with 8
H100s (no GPU here); the app runs headless at 160x50 with the GPU panel, then the GPU screen.
  - poller: sample + history append + building the immutable view handed to the UI (full
    10-minute history copied for 8 GPUs x 7 metrics), measured in the poller thread;
  - UI: handling one GpuUpdate on the event loop (cards, graphs, process table) plus the
    repaint it triggers, per screen.
At 1 Hz the UI has 1000 ms per update; the figures show how much of that is used.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from gpuconsole.backend.gpu.history import GpuHistory
from gpuconsole.backend.gpu.nvml_source import NvmlSource
from gpuconsole.backend.gpu.nvml_standin import StandInNvml, h100_devices
from gpuconsole.backend.hosts.open import local_host
from gpuconsole.monitor.events import GpusUpdated
from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.messages import GpuUpdate

GPUS = 8
SAMPLES = 40


class TimedApp(GpuconsoleApp):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ui_ms: list[float] = []

    def on_gpu_update(self, message: GpuUpdate) -> None:
        start = time.perf_counter()
        super().on_gpu_update(message)
        self.ui_ms.append((time.perf_counter() - start) * 1000)


async def run() -> None:
    source = NvmlSource(nvml=StandInNvml(h100_devices(GPUS)))
    app = TimedApp(local_host("unix:///nonexistent.sock", gpu=source, timeout=1), gpu_interval=0.05)
    poller_ms: list[float] = []
    async with app.run_test(size=(160, 50)) as pilot:
        monitor = app.fleet[app.host.name]
        # The console's real history: 10 minutes at 1 Hz (the bench ticks faster to finish).
        history = monitor.history = GpuHistory(interval=1.0, window_s=600.0)
        # Fill it so the view copies are at their largest.
        for _ in range(history.capacity):
            history.append(source.sample())
        real_run = source.sample

        real_post = monitor._emit
        started: list[float] = []

        def timed_sample() -> Any:
            started.append(time.perf_counter())
            return real_run()

        def timed_post(message: Any) -> Any:
            # sample + history append + attribution + view built: the poller's whole tick.
            if started and isinstance(message, GpusUpdated):
                poller_ms.append((time.perf_counter() - started.pop()) * 1000)
            return real_post(message)

        source.sample = timed_sample  # type: ignore[method-assign]
        monitor._emit = timed_post
        app.ui_ms.clear()
        while len(app.ui_ms) < SAMPLES:
            await pilot.pause(0.05)
        panel = list(app.ui_ms)
        await pilot.press("g")
        await pilot.pause(0.5)
        app.ui_ms.clear()
        while len(app.ui_ms) < SAMPLES:
            await pilot.pause(0.05)
        screen = list(app.ui_ms)
    print(f"{GPUS} GPUs, history {history.capacity} samples each, median of {SAMPLES} updates")
    print("what | median ms | max ms")
    print("--- | --- | ---")
    print(
        f"poller tick: sample (stand-in NVML) + history + view | "
        f"{statistics.median(poller_ms):.3f} | {max(poller_ms):.3f}"
    )
    print(f"UI update, main screen (8 cards) | {statistics.median(panel):.2f} | {max(panel):.2f}")
    print(
        f"UI update, GPU screen (24 graphs) | {statistics.median(screen):.2f} | {max(screen):.2f}"
    )


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
