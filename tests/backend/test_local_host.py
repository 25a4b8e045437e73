"""The local DockerEngine against the real engine: listing, GPU requests, actions, events."""

from __future__ import annotations

import threading

import docker.types
import pytest

from gpuconsole.backend.errors import ActionRejected, ContainerNotFound, HostUnreachable
from gpuconsole.backend.hosts.open import local_host as make_local_host
from gpuconsole.backend.models import EngineState, GpuRequest

from support import TEST_IMAGE, wait_for


def test_list_shows_what_docker_ps_shows(make_container, local_host, tmp_path) -> None:  # type: ignore[no-untyped-def]
    running = make_container(
        ports={"80/tcp": ("127.0.0.1", None)},
        labels={"gpuconsole.variant": "jupyter"},
        volumes={str(tmp_path): {"bind": "/data", "mode": "ro"}},
    )
    stopped = make_container("exit 3", start=False)
    stopped.start()
    stopped.wait(timeout=20)

    by_id = {c.id: c for c in local_host.list_containers(all=True)}
    r = by_id[running.id]
    assert r.name == running.name and r.image == TEST_IMAGE
    assert r.state == "running" and r.status.startswith("Up")
    assert r.variant == "jupyter"
    (port,) = r.ports
    assert port.host_ip == "127.0.0.1" and port.private_port == 80 and port.host_port
    (mount,) = r.mounts
    assert mount.destination == "/data" and mount.read_only
    s = by_id[stopped.id]
    assert s.state == "exited" and s.status.startswith("Exited (3)")
    assert stopped.id not in {c.id for c in local_host.list_containers(all=False)}


def test_gpu_requests_from_device_requests(make_container, local_host) -> None:  # type: ignore[no-untyped-def]
    # This engine has no NVIDIA runtime: create records DeviceRequests, start would fail.
    all_gpus = make_container(
        start=False, device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    )
    two = make_container(
        start=False,
        device_requests=[docker.types.DeviceRequest(device_ids=["0", "1"], capabilities=[["gpu"]])],
    )
    none = make_container(start=False)
    got = local_host.gpu_requests([all_gpus.id, two.id, none.id])
    assert got[all_gpus.id] == GpuRequest(all=True)
    assert got[two.id] == GpuRequest(device_ids=("0", "1"))
    assert got[none.id].none


def test_refresh_inspects_each_container_once(make_container, local_host, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        make_container()
    local_host.snapshot()
    api = local_host._api()
    calls: list[str] = []
    real = api.inspect_container
    monkeypatch.setattr(api, "inspect_container", lambda cid: calls.append(cid) or real(cid))
    snap = local_host.snapshot()
    assert len(snap.containers) >= 3
    assert calls == []  # steady state: one list call, no per-container inspect
    fresh = make_container()
    local_host.snapshot()
    assert calls == [fresh.id]


def test_actions_change_the_engine_state(make_container, local_host) -> None:  # type: ignore[no-untyped-def]
    c = make_container()
    local_host.stop(c.name, timeout=1)
    c.reload()
    assert c.status == "exited"
    local_host.start(c.name)
    c.reload()
    assert c.status == "running"
    started = c.attrs["State"]["StartedAt"]
    local_host.restart(c.id, timeout=1)
    c.reload()
    assert c.status == "running" and c.attrs["State"]["StartedAt"] != started
    with pytest.raises(ActionRejected, match="is running: stop it first"):
        local_host.remove(c.name)
    local_host.remove(c.name, force=True)
    assert c.id not in {x.id for x in local_host.list_containers(all=True)}


def test_unknown_container_is_named(local_host) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ContainerNotFound, match="no such container 'does-not-exist'"):
        local_host.stop("does-not-exist")


def test_unreachable_engine_names_address_and_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"unix://{tmp_path}/nothing.sock"
    host = make_local_host(url, gpu=False, timeout=2).engine
    status = host.status()
    assert status.state is EngineState.DOWN
    assert status.address == url
    assert "no engine is listening" in (status.error or "")
    assert "DOCKER_HOST" in (status.hint or "")
    with pytest.raises(HostUnreachable, match=str(tmp_path)):
        host.list_containers()


def test_explicit_base_url_ignores_docker_cli_context(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text('{"currentContext": "elsewhere"}')
    assert make_local_host(gpu=False).address == "unix:///var/run/docker.sock"


def test_events_wake_the_listener(make_container, local_host) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, str]] = []
    ready = threading.Event()

    def on_event(action: str, cid: str) -> None:
        seen.append((action, cid))
        if action == "reconnect":
            ready.set()

    watch = local_host.watch_events(on_event)
    try:
        assert ready.wait(10)
        c = make_container()
        wait_for(lambda: ("start", c.id) in seen, what="a start event")
    finally:
        watch.close()
