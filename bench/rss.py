"""Resident memory of the console by component: what each layer adds to the process.

    eval "$(scripts/dev-env)" && .venv/bin/python -m bench.rss

Each row is a fresh interpreter that imports one more layer than the row before (or runs the
real app headless at 180x50 on the engine in DOCKER_HOST with the H100 replay, for the last
rows) and prints its VmRSS; the difference to the row before is what that layer costs. The
console's own data (rows, GPU history) shows in the last rows: the app with an empty table, then
after the first refresh of every container on the engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPLAY = ROOT.parent / "shared" / "fixtures" / "gpu" / "h100" / "nvml-recording-h100.jsonl"

RSS = "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')))"

STEPS: list[tuple[str, str]] = [
    ("python itself", ""),
    ("+ gpuconsole CLI (argparse, settings)", "import gpuconsole.cli"),
    ("+ backend (hosts, engine module)", "import gpuconsole.backend.hosts.open"),
    ("+ docker-py (requests, urllib3)", "import docker"),
    ("+ pynvml", "import pynvml"),
    ("+ rich", "import rich.console, rich.text"),
    ("+ textual", "import textual.app, textual.widgets"),
    ("+ the console's UI modules", "import gpuconsole.ui.app"),
]

APP = f"""
import asyncio, sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from pathlib import Path
from support import host_at
from gpuconsole.backend.gpu import factory
from gpuconsole.ui.app import GpuconsoleApp
WAIT = {{wait}}

async def main():
    src = factory.open_local_gpu_source(Path({str(REPLAY)!r}))
    app = GpuconsoleApp(host_at(gpu=src), refresh_seconds=2.0)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.pause(0.5)
        if WAIT:
            table = app.screen.query_one("ContainersTable")
            for _ in range(300):
                if table.row_count:
                    break
                await pilot.pause(0.1)
            await pilot.pause(6)
        {RSS}
asyncio.run(main())
"""


def rss_kib(code: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\n{RSS}" if "asyncio.run" not in code else code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    return int(out[-1])


def main() -> int:
    rows: list[tuple[str, int]] = []
    code = ""
    for label, line in STEPS:
        code = f"{code}\n{line}" if line else code
        rows.append((label, rss_kib(code)))
    rows.append(("the app running, replay H100, table empty", rss_kib(APP.format(wait=False))))
    rows.append(("... after the first refresh of every container", rss_kib(APP.format(wait=True))))
    print("component | RSS MB | adds MB")
    print("--- | --- | ---")
    before = 0
    for label, kib in rows:
        print(f"{label} | {kib / 1024:.1f} | {(kib - before) / 1024:+.1f}")
        before = kib
    return 0


if __name__ == "__main__":
    sys.exit(main())
