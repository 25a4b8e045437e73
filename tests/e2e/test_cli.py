"""The scriptable CLI, run as a user runs it (a subprocess), against the real engine."""

from __future__ import annotations

import json
from pathlib import Path

from gpuconsole import __version__

from support import run_cli

JSON_KEYS = {
    "host",
    "id",
    "name",
    "image",
    "state",
    "status",
    "variant",
    "gpus",
    "cpu_percent",
    "memory_bytes",
    "memory_limit_bytes",
    "ports",
}


gc = run_cli


def test_version() -> None:
    out = gc("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"gpuconsole {__version__}"


def test_ps_json_has_measured_cpu_and_memory(make_container, docker_client) -> None:  # type: ignore[no-untyped-def]
    busy = make_container(
        "while :; do :; done",
        labels={"gpuconsole.variant": "ssh"},
        ports={"22/tcp": ("127.0.0.1", None)},
    )
    limited = make_container(mem_limit="96m")
    stopped = make_container(start=False)
    out = gc("ps", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert stopped.name not in rows  # like docker ps: running only without -a
    b = rows[busy.name]
    assert set(b) == JSON_KEYS
    assert b["host"] == "local" and b["id"] == busy.id and b["state"] == "running"
    assert b["variant"] == "ssh" and b["gpus"] == "none"
    # One call measures CPU for every running container: no null on the first call.
    assert b["cpu_percent"] is not None and b["cpu_percent"] > 20
    host_mem = docker_client.info()["MemTotal"]
    assert b["memory_limit_bytes"] == host_mem  # unlimited: the host's memory, as docker stats
    assert rows[limited.name]["memory_limit_bytes"] == 96 * 1024 * 1024
    assert rows[limited.name]["memory_bytes"] > 0
    (port,) = b["ports"]
    assert port["host_ip"] == "127.0.0.1" and port["container_port"] == 22
    assert isinstance(port["host_port"], int)

    all_rows = {r["name"]: r for r in json.loads(gc("ps", "-a", "--json").stdout)}
    s = all_rows[stopped.name]
    assert s["state"] == "created"
    assert s["cpu_percent"] is None and s["memory_bytes"] is None


def test_ps_table(make_container) -> None:  # type: ignore[no-untyped-def]
    c = make_container()
    out = gc("ps")
    assert out.returncode == 0
    header, *lines = out.stdout.splitlines()
    assert header.split()[:3] == ["CONTAINER", "ID", "NAME"]
    (line,) = [ln for ln in lines if c.name in ln]
    assert c.short_id in line and "gpuconsole-test/busybox:1" in line and "Up" in line


def test_start_stop_restart_rm(make_container, docker_client) -> None:  # type: ignore[no-untyped-def]
    c = make_container()
    assert gc("stop", "-t", "1", c.name).returncode == 0
    c.reload()
    assert c.status == "exited"
    assert gc("start", c.name).returncode == 0
    c.reload()
    assert c.status == "running"
    before = c.attrs["State"]["StartedAt"]
    assert gc("restart", "-t", "1", c.name).returncode == 0
    c.reload()
    assert c.attrs["State"]["StartedAt"] != before

    refused = gc("rm", c.name)
    assert refused.returncode == 1
    assert "is running: stop it first" in refused.stderr
    c.reload()  # still there
    assert gc("rm", "-f", c.name).returncode == 0
    assert not docker_client.containers.list(all=True, filters={"id": c.id})


def test_unknown_name_exit_1_and_others_still_done(make_container) -> None:  # type: ignore[no-untyped-def]
    c = make_container()
    out = gc("stop", "-t", "1", "no-such-container-xyz", c.name)
    assert out.returncode == 1
    assert "no such container 'no-such-container-xyz'" in out.stderr
    c.reload()
    assert c.status == "exited"


def test_bad_usage_exit_2() -> None:
    assert gc("stop").returncode == 2
    assert gc("ps", "--bogus").returncode == 2
    assert gc("frobnicate").returncode == 2


def test_unreachable_engine_says_where_and_how(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/none.sock"
    out = gc("ps", env={"DOCKER_HOST": url})
    assert out.returncode == 1
    assert url in out.stderr and "start the engine" in out.stderr
    out = gc("--docker-host", url, "ps")
    assert out.returncode == 1 and url in out.stderr


def test_read_only_refuses_changes(make_container) -> None:  # type: ignore[no-untyped-def]
    c = make_container()
    out = gc("--read-only", "stop", c.name)
    assert out.returncode == 1 and "read-only" in out.stderr
    c.reload()
    assert c.status == "running"


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[ui]\nrefresh_seconds = "fast"\n')
    out = gc("--config", str(cfg), "ps")
    assert out.returncode == 1
    assert "ui.refresh_seconds" in out.stderr and str(cfg) in out.stderr
    cfg.write_text("[ui\n")
    out = gc("ps", env={"GPUCONSOLE_CONFIG": str(cfg)})
    assert out.returncode == 1 and "not valid TOML" in out.stderr


def test_bad_gpu_interval_is_usage_error() -> None:
    for value in ("-1", "0", "fast"):
        out = gc("--gpu-interval", value, "ps")
        assert out.returncode == 2 and "--gpu-interval" in out.stderr
