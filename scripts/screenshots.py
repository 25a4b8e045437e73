"""Screenshots of the real console against real containers on the engine in DOCKER_HOST.

    python scripts/screenshots.py   (or: .venv/bin/python scripts/screenshots.py)

Starts a few labelled demo containers from the test image, drives the app headless with its own
keys, saves SVGs into screenshots/, and removes the containers again.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import docker

from gpuconsole.backend.docker.engine import default_docker_host
from gpuconsole.backend.hosts.open import local_host
from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.details import DetailsScreen
from gpuconsole.ui.screens.logs import LogsScreen
from gpuconsole.ui.widgets.containers_table import ContainersTable

OUT = Path(__file__).resolve().parent.parent / "screenshots"
IMAGE = os.environ.get("GPUCONSOLE_TEST_IMAGE", "gpuconsole-test/busybox:1")
LABEL = {"gpuconsole-demo": "1"}


#: What a training run prints (stdout) and warns (stderr), for the logs screenshot.
TRAINING_LOG = (
    "echo 'loading ImageNet train split: 1,281,167 images'; "
    "echo 'UserWarning: TypedStorage is deprecated' >&2; "
    "awk 'BEGIN { for (i = 1; i <= 60; i++) printf "
    '"epoch %2d/90  step %5d  loss %.4f  top1 %.3f  lr %.5f  %4.0f img/s\\n", '
    "int(i / 20) + 1, i * 250, 2.3 / (1 + i / 8) + 0.05, i / (i + 12), "
    "0.1 - i * 0.0012, 2380 + (i * 37) % 80 }'; "
    "echo 'checkpoint saved: /workspace/ckpt/epoch-03.pt'; "
    "echo 'NCCL WARN: P2P not supported between GPU 0 and GPU 1, using SHM' >&2"
)


def start_demo(client: docker.DockerClient, workdir: str) -> None:
    """Four labelled containers that look like a workstation's day: busy, idle, exited."""
    run = partial(client.containers.run, IMAGE, detach=True)
    run(
        ["sh", "-c", TRAINING_LOG + "; while :; do :; done"],
        name="train-resnet50",
        labels={**LABEL, "gpuconsole.variant": "ssh"},
        mem_limit="2g",
        shm_size="1g",
        ports={"22/tcp": ("127.0.0.1", 2222)},
        volumes={workdir: {"bind": "/home/aiuser/projects", "mode": "rw"}},
    )
    run(
        ["sh", "-c", "head -c 200000000 /dev/zero > /dev/shm/cache; sleep 86400"],
        name="jupyter-ana-1",
        labels={**LABEL, "gpuconsole.variant": "jupyter"},
        environment={"JUPYTER_TOKEN": "3f9c1d2e8b7a6f5e4d3c2b1a"},
        ports={"8888/tcp": ("127.0.0.1", 8888)},
        volumes={workdir: {"bind": "/workspace", "mode": "rw"}},
    )
    run(
        ["sleep", "86400"],
        name="tensorboard",
        labels=LABEL,
        ports={"6006/tcp": ("127.0.0.1", 6006)},
    )
    run(["sh", "-c", "exit 1"], name="etl-nightly", labels=LABEL).wait()


RECORDING = (
    Path(__file__).resolve().parent.parent / "tests/fixtures/gpu/h100/nvml-recording-h100.jsonl"
)


class FastReplay:
    """The recorded H100 through ReplaySource, one recorded second per sample, so a few wall
    seconds fill the graphs with the idle → allocation → matmul phases. Marked as a replay."""

    def __init__(self, stop_after: int) -> None:
        from gpuconsole.backend.gpu import ReplaySource

        self.t = 0.0
        self.stop_after = stop_after
        self.inner = ReplaySource.from_file(
            RECORDING, clock=lambda: self.t, wall_clock=lambda: 1_795_713_095.0 + self.t
        )
        self.last: Any = None
        self.name, self.host, self.replayed = "replay", "replay", True

    def sample(self) -> Any:
        if self.last is None or self.t < self.stop_after:
            self.last = self.inner.sample()
            self.t += 1.0
        return self.last

    def close(self) -> None:
        pass


async def shoot() -> None:
    source = FastReplay(stop_after=26)
    app = GpuconsoleApp(
        local_host(default_docker_host(), gpu=source),  # type: ignore[arg-type]
        refresh_seconds=1.0,
        gpu_interval=0.1,
        replay_name=RECORDING.name,
    )
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.screen.query_one(ContainersTable)
        while table.row_count < 4:
            await pilot.pause(0.1)
        await pilot.pause(2.5)  # two readings: CPU % filled in
        name = {c.name: c.id for c in table.containers.values()}
        table.select_id(name["train-resnet50"])
        await pilot.pause(0.2)
        app.save_screenshot("containers.svg", str(OUT))
        await pilot.press("l")
        while not isinstance(app.screen, LogsScreen) or "following" not in app.screen.status_text:
            await pilot.pause(0.1)
        await pilot.press("slash")
        await pilot.press(*"loss 0.6")
        await pilot.press("enter")
        await pilot.pause(0.5)
        app.save_screenshot("logs.svg", str(OUT))
        await pilot.press("escape")
        await pilot.pause(0.3)
        table.select_id(name["jupyter-ana-1"])
        await pilot.press("enter")
        while not isinstance(app.screen, DetailsScreen):
            await pilot.pause(0.1)
        await pilot.pause(0.8)
        app.save_screenshot("details.svg", str(OUT))
        await pilot.press("escape")
        await pilot.pause(0.2)
        table.select_id(name["etl-nightly"])
        await pilot.press("d")
        await pilot.pause(0.5)
        app.save_screenshot("confirm-remove.svg", str(OUT))
        await pilot.press("n")
        await pilot.pause(0.3)
        await pilot.press("g")
        await pilot.pause(1.0)
        app.save_screenshot("gpus.svg", str(OUT))
        await pilot.press("escape")
        await pilot.pause(0.3)
        await pilot.press("n")
        await pilot.pause(0.5)
        form = app.screen
        form.query_one("#f-image").value = os.environ.get(
            "GPUCONSOLE_TEST_JUPYTER_IMAGE", "gpuconsole-test/jupyter:bookworm"
        )
        form.query_one("#f-memory").value = "32g"
        form.query_one("#f-cpus").value = "8"
        form.query_one("#f-gpus").value = "all"
        await pilot.pause(1.5)
        app.save_screenshot("launch-form.svg", str(OUT))
        await pilot.press("escape")


async def shoot_fleet(client: docker.DockerClient, home: Path) -> None:
    """The console over a fleet: this machine, the loopback sshd as GPU server ``gpu-lab`` (its
    stand-in nvidia-smi replays the H100 over SSH; the GPU process list names a demo container's
    PID, so attribution happens on that host) and ``gpu-old``, where nothing answers."""
    import socket

    from gpuconsole.backend.hosts.open import ssh_host
    from gpuconsole.backend.hosts.spec import HostSpec, SshOptions
    from gpuconsole.ui.screens.hosts import HostsScreen

    port = os.environ["GPUCONSOLE_TEST_SSH_PORT"]
    key = os.environ["GPUCONSOLE_TEST_SSH_KEY"]
    host_key = Path(os.environ["GPUCONSOLE_TEST_SSH_HOST_KEY"]).read_text().split()[:2]
    (home / ".ssh").mkdir(parents=True, mode=0o700, exist_ok=True)
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    os.environ["HOME"] = str(home)
    apps = Path(os.environ["GPUCONSOLE_TEST_SMI_APPS"])
    before = apps.read_text()
    train = client.containers.get("train-resnet50")
    uuid = before.split(",")[-1].strip()
    apps.write_text(f"{train.attrs['State']['Pid']}, python3, 20998, {uuid}\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    socket_path = default_docker_host().removeprefix("unix://")

    def remote(name: str, where: int | str) -> Any:
        spec = HostSpec(
            name, ssh=f"root@127.0.0.1:{where}", identity_file=key, docker_socket=socket_path
        )
        return ssh_host(spec, SshOptions(), gpu=True)

    app = GpuconsoleApp(
        [
            local_host(default_docker_host(), gpu=False),
            remote("gpu-lab", port),
            remote("gpu-old", closed),
        ],
        refresh_seconds=1.0,
        gpu_interval=0.5,
    )
    try:
        async with app.run_test(size=(150, 40)) as pilot:
            table = app.containers_screen.query_one(ContainersTable)
            while len(table.rows_shown) < 8 or "gpu-lab" not in app.gpu_views:
                await pilot.pause(0.2)
            await pilot.pause(6.0)  # GPU history and the first process list
            app.save_screenshot("fleet.svg", str(OUT))
            await pilot.press("h")
            while not isinstance(app.screen, HostsScreen):
                await pilot.pause(0.1)
            await pilot.pause(1.2)
            app.save_screenshot("hosts.svg", str(OUT))
    finally:
        apps.write_text(before)


def shoot_browser() -> None:
    """The console served to a browser (gpuconsole serve) and photographed by chromium: the
    page as a user sees it, through the printed URL, with the replayed H100 at 0.1 s samples."""
    import shutil
    import subprocess
    import sys
    import time

    chromium = os.environ.get("GPUCONSOLE_TEST_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        print("no chromium (apt-get install chromium): browser screenshot skipped")
        return
    from playwright.sync_api import sync_playwright

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpuconsole",
            "--gpu-replay",
            str(RECORDING),
            "--gpu-interval",
            "0.1",
            "serve",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with sync_playwright() as playwright:
            args = ["--no-sandbox"] if os.geteuid() == 0 else []
            browser = playwright.chromium.launch(executable_path=chromium, args=args)
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(url)
            page.wait_for_function(
                "() => window.gpuconsoleTerminal && [...Array(window.gpuconsoleTerminal.rows)]"
                ".some((_, i) => (window.gpuconsoleTerminal.buffer.active.getLine(i) || "
                "{translateToString: () => ''}).translateToString().includes('train-resnet50'))",
                timeout=30_000,
            )
            time.sleep(18)  # the replay (real time) reaches its matmul phase at 15 s
            page.screenshot(path=str(OUT / "browser.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    client = docker.DockerClient(base_url=default_docker_host(), version="auto")
    for c in client.containers.list(all=True, filters={"label": "gpuconsole-demo"}):
        c.remove(force=True)
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        start_demo(client, workdir)
        try:
            asyncio.run(shoot())
            shoot_browser()
            if os.environ.get("GPUCONSOLE_TEST_SSH_PORT"):  # the test set-up's loopback sshd
                asyncio.run(shoot_fleet(client, Path(workdir) / "home"))
            else:
                print('no loopback sshd (eval "$(scripts/dev-env)"): fleet screenshots skipped')
        finally:
            for c in client.containers.list(all=True, filters={"label": "gpuconsole-demo"}):
                c.remove(force=True)
    print(f"screenshots written to {OUT}")


if __name__ == "__main__":
    main()
