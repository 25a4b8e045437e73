"""A remote host end to end: the loopback sshd is the "remote", the suite's engine its engine.

What a user relies on: the same containers, memory and GPU owners through SSH as locally; ONE
SSH connection carrying a whole console session; a stopped server noticed within the probe
budget while another host keeps its cadence, and the connection back by itself after.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.gpu import attribute_gpu_processes
from gpuconsole.backend.gpu.models import GpuSourceState
from gpuconsole.backend.hosts.local import LocalMachine
from gpuconsole.backend.hosts.open import local_host
from gpuconsole.backend.hosts.spec import SshOptions
from gpuconsole.monitor.events import ContainersUpdated, EngineDown, MonitorEvent
from gpuconsole.monitor.fleet import Fleet

from sshfixtures import loop_host, trust_port
from support import wait_for

if TYPE_CHECKING:
    from sshfixtures import PrivateSshd, SshEnv

FAST = SshOptions(probe_interval=1.0, probe_timeout=1.0, down_after=2)


def test_the_same_snapshot_through_ssh_as_locally(
    ssh_home: Path, ssh_env: SshEnv, make_container: Any, apps_file: Path
) -> None:
    busy = make_container("while :; do :; done", nano_cpus=500_000_000, mem_limit="64m")
    idle = make_container("sleep 3600")
    here, there = local_host(gpu=False), loop_host()
    try:
        for host in (here, there):
            host.engine.snapshot()  # CPU % needs a previous reading
        assert (here.engine.route, there.engine.route) == ("unix", "stream-local")
        time.sleep(1.0)
        mine, theirs = here.engine.snapshot(), there.engine.snapshot()
        assert {c.id for c in mine.containers} == {c.id for c in theirs.containers}
        assert theirs.status.engine_version == mine.status.engine_version
        for c in (busy, idle):
            a, b = mine.stats[c.id], theirs.stats[c.id]
            assert a.memory_bytes and b.memory_bytes
            assert abs(a.memory_bytes - b.memory_bytes) <= 0.1 * a.memory_bytes + 512 * 1024
            assert a.memory_limit_bytes == b.memory_limit_bytes
        # --cpus 0.5 busy loop: both read at most half a core (less on a contended machine),
        # and the two readings agree.
        near, far = mine.stats[busy.id].cpu_percent, theirs.stats[busy.id].cpu_percent
        assert near is not None and far is not None
        assert 20 <= near <= 60 and 20 <= far <= 60 and abs(near - far) <= 15

        # GPU owners joined on the remote host, in the same command as the process list.
        busy.reload()
        pid = busy.attrs["State"]["Pid"]
        uuid = apps_file.read_text().split(",")[-1].strip()
        apps_file.write_text(f"{pid}, python3, 20998, {uuid}\n")
        source = there.gpu
        assert source is not None

        def attributed() -> bool:
            snap = source.sample()
            return snap.state is GpuSourceState.OK and any(p.pid == pid for p in snap.processes)

        wait_for(attributed, 20, "the remote process list naming the container's PID")
        snap = source.sample()
        assert snap.origins, "cgroups travel with the process list"
        remote_owner = attribute_gpu_processes(snap, machine=there.machine, known_ids=[busy.id])
        assert remote_owner.container_of(pid) == busy.id
        # The same PID attributed by reading this machine's /proc directly agrees.
        bare = type(snap)(
            snap.host, snap.source, snap.state, snap.timestamp, snap.gpus, snap.processes
        )
        local_owner = attribute_gpu_processes(bare, machine=LocalMachine(), known_ids=[busy.id])
        assert local_owner.container_of(pid) == busy.id
    finally:
        here.close()
        there.close()


def _published_port(container: Any) -> int:
    container.reload()
    return int(container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])


def _our_connections(port: int) -> int:
    """Established TCP connections from this process to ``port`` (what `ss` sees)."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(f"pid={os.getpid()}," in line for line in out.splitlines())


def _stream_readers() -> int:
    """Reader threads of the loop host's nvidia-smi stream (SmiStreamSource names them)."""
    return sum(t.name == "nvidia-smi stream loop" for t in threading.enumerate())


async def test_one_tcp_connection_carries_a_whole_console_session(
    ssh_home: Path, ssh_env: SshEnv, make_container: Any, apps_file: Path, private_sshd: Any
) -> None:
    from gpuconsole.ui.app import GpuconsoleApp
    from gpuconsole.ui.screens.details import DetailsScreen

    web = make_container(
        "mkdir -p /www && echo hello-from-remote > /www/index.html && httpd -f -p 8080 -h /www",
        ports={"8080/tcp": ("127.0.0.1", None)},
    )
    others = [make_container("sleep 3600") for _ in range(3)]
    web.reload()
    uuid = apps_file.read_text().split(",")[-1].strip()
    apps_file.write_text(f"{web.attrs['State']['Pid']}, httpd, 1024, {uuid}\n")
    # A server of its own: its log and its port count this session's logins and connections
    # only, whatever else runs on the machine.
    server: PrivateSshd = private_sshd()
    trust_port(ssh_home, server.port)
    # As the console opens its hosts (cli/tui.py): the GPU loop reads the nvidia-smi stream
    # and asks for the process list on a session kept open — no reader thread of its own.
    host = loop_host(
        port=server.port, options=SshOptions(probe_interval=1.0), gpu_read_in_sample=True
    )
    readers_before = _stream_readers()
    app = GpuconsoleApp([host], refresh_seconds=0.5, gpu_interval=0.5)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = app.containers_screen
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and web.id not in screen.table.containers:
            await pilot.pause(0.1)
        assert web.id in screen.table.containers, "the remote containers are listed"
        # Many inspects (details of each container), events (a container stops), the stats
        # exec every refresh, the GPU stream and process list, and a tunnel with parallel
        # fetches — all while the console runs.
        for c in [web, *others]:
            app.push_screen(DetailsScreen(host, c.id, c.name))
            await pilot.pause(0.3)
            app.pop_screen()
        others[0].stop(timeout=1)
        tunnel = host.tunnels.open(f"{web.id}:8080", _published_port(web))

        def fetch(_: int) -> str:
            url = f"http://127.0.0.1:{tunnel.local_port}/index.html"
            with urllib.request.urlopen(url, timeout=10) as response:
                return str(response.read().decode())

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            pages = await asyncio.to_thread(lambda: list(pool.map(fetch, range(24))))
        assert pages == ["hello-from-remote\n"] * 24
        while time.monotonic() < deadline and app.gpu_views.get("loop") is None:
            await pilot.pause(0.1)
        view = app.gpu_views["loop"]
        assert view.holders(0) == (web.name,), "the GPU process is named by its container"
        assert _stream_readers() == readers_before, "no reader thread for the GPU stream"
        await pilot.pause(3.0)
        assert _our_connections(server.port) == 1
        assert host.machine.connects == 1  # type: ignore[attr-defined]
    assert server.log_text().count("Accepted publickey") == 1, "the session logged in once"


def test_a_stopped_server_is_down_within_the_probe_budget_and_comes_back(
    ssh_home: Path, ssh_env: SshEnv, private_sshd: Any
) -> None:
    spare: PrivateSshd = private_sshd()
    trust_port(ssh_home, spare.port)
    stopped = loop_host("stopped", port=spare.port, gpu=False)
    steady = loop_host("steady", gpu=False)
    events: list[tuple[float, MonitorEvent]] = []
    lock = threading.Lock()

    def emit(event: MonitorEvent) -> None:
        with lock:
            events.append((time.monotonic(), event))

    def seen(kind: type, host: str, after: float = 0.0) -> list[float]:
        with lock:
            return [t for t, e in events if isinstance(e, kind) and e.host == host and t > after]

    fleet = Fleet([stopped, steady], emit, refresh_seconds=0.5, down_interval=0.5)
    fleet.start()
    try:
        wait_for(lambda: bool(seen(ContainersUpdated, "stopped")), 20, "the first refresh")
        wait_for(lambda: bool(seen(ContainersUpdated, "steady")), 20, "the other host")
        frozen = spare.freeze_sshd()  # the server stops answering
        t0 = time.monotonic()
        budget = FAST.probe_interval * FAST.down_after + FAST.probe_timeout + 1.5
        wait_for(lambda: bool(seen(EngineDown, "stopped", t0)), budget + 2, "the host marked down")
        down_after = seen(EngineDown, "stopped", t0)[0] - t0
        assert down_after <= budget, f"marked down after {down_after:.1f} s"
        time.sleep(2.0)
        steady_times = [t0, *seen(ContainersUpdated, "steady", t0), time.monotonic()]
        gaps = [b - a for a, b in itertools.pairwise(steady_times)]
        # Refreshing every 0.5 s (each ~0.3 s over SSH): a host blocked by the stopped one
        # would miss the whole stop (several seconds), not one beat.
        assert max(gaps) < 3.0, f"the other host stalled {max(gaps):.1f} s"
        assert len(steady_times) >= 5
        spare.thaw(frozen)
        t1 = time.monotonic()
        wait_for(lambda: bool(seen(ContainersUpdated, "stopped", t1)), 20, "the reconnect")
        state = stopped.machine.status.state.value  # type: ignore[attr-defined]
        assert state == "up"
    finally:
        fleet.stop()
        stopped.close()
        steady.close()


def test_a_server_that_forbids_socket_forwarding_still_serves_the_engine(
    ssh_home: Path, private_sshd: Any
) -> None:
    """``AllowStreamLocalForwarding no``: the API goes over `docker system dial-stdio`
    sessions instead, and the console works the same."""
    strict: PrivateSshd = private_sshd("AllowStreamLocalForwarding no")
    trust_port(ssh_home, strict.port)
    host = loop_host("strict", port=strict.port, gpu=False)
    try:
        snapshot = host.engine.snapshot()
        assert snapshot.status.engine_version
        again = host.engine.snapshot()
        assert {c.id for c in again.containers} == {c.id for c in snapshot.containers}
        assert "refused streamlocal port forward" in strict.log_text()  # tried, refused
        assert host.engine.route == "dial-stdio"
    finally:
        host.close()
