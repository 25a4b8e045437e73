"""The CLI against a remote host, run as a user runs it (a subprocess with its own HOME).

The "remote" host is the loopback sshd the test set-up starts, whose Docker socket is the test
engine's own: what ``--host loop`` shows must be what the local engine shows, reached through one
SSH connection. Its sessions have a stand-in ``nvidia-smi`` (a recorded H100) first on PATH.
Tests that count logins in an sshd log use a private sshd (same keys and config, own port and
log), so that other suites using the shared sshd at the same time do not add lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from docker.types import DeviceRequest

from support import (
    TEST_LABEL,
    engine_socket,
    remote_setup,
    run_cli,
    ssh_env,
    wait_for,
)

JUPYTER_IMAGE = os.environ.get("GPUCONSOLE_TEST_JUPYTER_IMAGE", "gpuconsole-test/jupyter:bookworm")
DEBIAN_IMAGE = os.environ.get("GPUCONSOLE_TEST_DEBIAN_IMAGE", "gpuconsole-test/debian:bookworm")
SSH_IMAGE = "gpuconsole-test/remote-ssh:bookworm"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BUSY_APPS = FIXTURES / "gpu/h100/nvidia-smi-apps-busy.csv"
H100_UUID = BUSY_APPS.read_text().split(",")[-1].strip()
MIB = 1024 * 1024
GIB = 1024 * MIB
ACCEPTED = "Accepted publickey"
LOOP = "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# Helpers


def gc(
    home: Path, config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``gpuconsole --config CONFIG ARGS`` with HOME=home (the real ~/.ssh is never read)."""
    return run_cli(
        "--config", str(config), *args, env={"HOME": str(home), **(env or {})}, timeout=timeout
    )


def ps_json(home: Path, config: Path, *args: str) -> list[dict[str, Any]]:
    out = gc(home, config, "ps", "-a", "--json", *args)
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10):
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def logins(log: str | Path) -> int:
    return Path(log).read_text(errors="replace").count(ACCEPTED)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def config(home: Path) -> Path:
    """A HOME that trusts the loopback sshd, with it as host ``loop``."""
    return remote_setup(home)


@pytest.fixture
def run_label(docker_client: Any) -> Iterator[str]:
    """A label unique to this test; whatever carries it is removed afterwards."""
    label = f"gpct-run={uuid.uuid4().hex}"
    yield label
    for c in docker_client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)


# ---------------------------------------------------------------------------------------------
# 1. Listing


def test_listing_over_ssh_equals_listing_here(
    home: Path, config: Path, make_container: Callable[..., Any]
) -> None:
    # 8 MiB in /dev/shm (charged to the container): memory large enough that 10 % means
    # something, and steady.
    fill = "head -c 8388608 /dev/zero > /dev/shm/fill && touch /tmp/filled && "
    busy = make_container(fill + "while :; do :; done", nano_cpus=500_000_000)
    limited = make_container(fill + "sleep 3600", mem_limit="64m", ports={"80/tcp": (LOOP, None)})
    stopped = make_container("exit 3")
    # GPUs requested (--gpus all): created, never started (this engine has no NVIDIA runtime).
    reserved = make_container(
        start=False, device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])]
    )
    mine = (busy, limited, stopped, reserved)
    for c in (busy, limited):
        wait_for(lambda c=c: c.exec_run(["test", "-f", "/tmp/filled"]).exit_code == 0, 30)
    wait_for(lambda: stopped.reload() or stopped.status == "exited", 30, "the container to exit")

    there = {r["id"]: r for r in ps_json(home, config, "--host", "loop")}
    here = {r["id"]: r for r in ps_json(home, config)}
    for c in mine:
        assert c.id in there and c.id in here, f"{c.name} missing from a listing"
        a, b = here[c.id], there[c.id]
        assert a["host"] == "local" and b["host"] == "loop"
        for key in ("id", "name", "image", "state", "ports", "gpus", "variant"):
            assert a[key] == b[key], f"{c.name}: {key} differs: {a[key]!r} here, {b[key]!r} there"
        if a["state"] == "running":
            assert a["memory_bytes"] >= 8 * MIB and b["memory_bytes"] >= 8 * MIB, c.name
            assert abs(a["memory_bytes"] - b["memory_bytes"]) <= 0.1 * a["memory_bytes"], c.name
            assert a["memory_limit_bytes"] == b["memory_limit_bytes"]
            assert a["cpu_percent"] is not None and b["cpu_percent"] is not None, c.name
        else:
            assert a["memory_bytes"] is None and b["memory_bytes"] is None
            assert a["cpu_percent"] is None and b["cpu_percent"] is None

    assert [here[c.id]["state"] for c in mine] == ["running", "running", "exited", "created"]
    assert there[stopped.id]["status"].startswith("Exited (3)")
    assert here[reserved.id]["gpus"] == "all" and here[busy.id]["gpus"] == "none"
    assert there[limited.id]["memory_limit_bytes"] == 64 * MIB
    (port,) = there[limited.id]["ports"]
    assert port["host_ip"] == "127.0.0.1" and port["container_port"] == 80
    assert isinstance(port["host_port"], int)
    # A --cpus 0.5 busy loop reads about half a core, through SSH as here. (Other work on a
    # small test machine can starve it below its quota for a moment: up to 3 readings.)
    readings = [(here[busy.id]["cpu_percent"], there[busy.id]["cpu_percent"])]
    while not all(35 <= r <= 65 for r in readings[-1]) and len(readings) < 3:
        pair = [
            {r["id"]: r for r in ps_json(home, config, *where)}[busy.id]["cpu_percent"]
            for where in ((), ("--host", "loop"))
        ]
        readings.append((pair[0], pair[1]))
    assert all(35 <= r <= 65 for r in readings[-1]), f"CPU % (here, there): {readings}"

    out = gc(home, config, "ps", "-a", "--json", "--all-hosts")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert all(r["host"] in ("local", "loop") for r in rows)
    seen = {(r["host"], r["id"]) for r in rows}
    for c in mine:
        assert ("local", c.id) in seen and ("loop", c.id) in seen, c.name


# ---------------------------------------------------------------------------------------------
# 2. Actions


def test_actions_over_ssh_change_the_engine(
    home: Path, config: Path, make_container: Callable[..., Any], docker_client: Any
) -> None:
    c = make_container("sleep 3600")

    out = gc(home, config, "stop", c.name, "-t", "1", "--host", "loop")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == c.name
    c.reload()
    assert c.status == "exited"

    out = gc(home, config, "start", c.name, "--host", "loop")
    assert out.returncode == 0, out.stderr
    c.reload()
    assert c.status == "running"

    started = c.attrs["State"]["StartedAt"]
    out = gc(home, config, "restart", c.name, "-t", "1", "--host", "loop")
    assert out.returncode == 0, out.stderr
    c.reload()
    assert c.status == "running" and c.attrs["State"]["StartedAt"] != started

    # An unknown name: named on stderr with the host, exit 1, the other names still done.
    missing = f"gpct-missing-{uuid.uuid4().hex[:6]}"
    out = gc(home, config, "rm", "-f", missing, c.name, "--host", "loop")
    assert out.returncode == 1
    assert "no such container" in out.stderr
    assert missing in out.stderr and "loop" in out.stderr
    assert out.stdout.strip() == c.name
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(c.id)

    out = gc(home, config, "stop", missing, "--host", "loop")
    assert out.returncode == 1
    assert "no such container" in out.stderr and "loop" in out.stderr


# ---------------------------------------------------------------------------------------------
# 3. GPUs


def test_gpus_over_ssh_name_the_container_holding_the_gpu(
    home: Path, config: Path, make_container: Callable[..., Any], apps_file: Path
) -> None:
    c = make_container("sleep 3600")
    pid = c.attrs["State"]["Pid"]
    assert pid > 0
    apps_file.write_text(f"{pid}, python3, 20998, {H100_UUID}\n")

    out = gc(home, config, "gpus", "--host", "loop", "--json")
    assert out.returncode == 0, out.stderr
    (gpu,) = json.loads(out.stdout)
    assert gpu["host"] == "loop" and gpu["index"] == 0 and gpu["uuid"] == H100_UUID
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert 78 * GIB <= gpu["memory_total_bytes"] <= 82 * GIB  # "80 GB"
    assert 0 <= gpu["memory_used_bytes"] <= gpu["memory_total_bytes"]
    assert gpu["processes"] == [
        {"pid": pid, "used_memory_bytes": 20998 * MIB, "container": c.name}
    ], "the GPU process is attributed to its container on the remote host"

    out = gc(home, config, "gpus", "--host", "loop")
    assert out.returncode == 0, out.stderr
    assert "NVIDIA H100 80GB HBM3" in out.stdout
    assert c.name in out.stdout

    # The list as captured (a PID that is no container's): a host process.
    apps_file.write_text(BUSY_APPS.read_text())
    host_pid = int(BUSY_APPS.read_text().split(",")[0])
    out = gc(home, config, "gpus", "--host", "loop", "--json")
    assert out.returncode == 0, out.stderr
    (gpu,) = json.loads(out.stdout)
    assert gpu["processes"] == [
        {"pid": host_pid, "used_memory_bytes": 20998 * MIB, "container": None}
    ]


# ---------------------------------------------------------------------------------------------
# 4. Host keys


def test_unknown_host_key_is_refused_until_accepted(home: Path) -> None:
    env = ssh_env()
    config = remote_setup(home, trusted=False)
    known = home / ".ssh" / "known_hosts"
    assert not known.exists()
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", env["GPUCONSOLE_TEST_SSH_HOST_KEY"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert fingerprint.startswith("SHA256:")

    out = gc(home, config, "ps", "--host", "loop")
    assert out.returncode != 0
    assert fingerprint in out.stderr
    assert "--accept-new-host-key" in out.stderr
    assert not known.exists(), "nothing is trusted without being asked"

    out = gc(home, config, "--accept-new-host-key", "ps", "--host", "loop")
    assert out.returncode == 0, out.stderr
    (line,) = known.read_text().splitlines()
    key_type, key_b64 = Path(env["GPUCONSOLE_TEST_SSH_HOST_KEY"]).read_text().split()[:2]
    assert line.split() == [f"[127.0.0.1]:{env['GPUCONSOLE_TEST_SSH_PORT']}", key_type, key_b64]

    # Trusted from now on, without the flag.
    out = gc(home, config, "ps", "--host", "loop")
    assert out.returncode == 0, out.stderr
    assert len(known.read_text().splitlines()) == 1


def test_changed_host_key_is_refused_even_with_accept_new(home: Path, tmp_path: Path) -> None:
    env = ssh_env()
    config = remote_setup(home, trusted=False)
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    other_type, other_b64 = Path(f"{other}.pub").read_text().split()[:2]
    known = home / ".ssh" / "known_hosts"
    known.write_text(
        "# the server as it was\n"
        f"[127.0.0.1]:{env['GPUCONSOLE_TEST_SSH_PORT']} {other_type} {other_b64}\n"
    )
    before = known.read_bytes()

    out = gc(home, config, "--accept-new-host-key", "ps", "--host", "loop")
    assert out.returncode != 0
    assert str(known) in out.stderr and "line 2" in out.stderr
    assert "CHANGED" in out.stderr.upper()
    assert known.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# 5. hosts


def test_hosts_json_up_and_down(home: Path) -> None:
    closed = free_port()  # bound and released: nothing listens there
    config = remote_setup(
        home, extra=f'\n[[hosts]]\nname = "closed"\nssh = "root@127.0.0.1:{closed}"\n'
    )
    out = gc(home, config, "hosts", "--json")
    assert out.returncode == 1, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert list(rows) == ["local", "loop", "closed"]
    local, loop, down = rows["local"], rows["loop"], rows["closed"]
    assert local["state"] == "up" and loop["state"] == "up"
    assert local["kind"] == "local" and loop["kind"] == "ssh"
    assert loop["engine_version"] and loop["engine_version"] == local["engine_version"]
    assert loop["gpus"] == 1  # the stand-in nvidia-smi's H100
    assert isinstance(loop["latency_ms"], int | float) and loop["latency_ms"] >= 0
    assert down["state"] == "down" and down["kind"] == "ssh"
    assert down["error"] and "refused" in down["error"]


# ---------------------------------------------------------------------------------------------
# 6. A host that accepts TCP and never speaks


@pytest.fixture
def silent_listener() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP port that accepts connections and never writes (the sockets stay open)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=serve, name="silent listener", daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    done.set()
    thread.join(5)
    listener.close()
    for conn in accepted:
        conn.close()


def test_a_silent_host_costs_its_timeout_only(
    home: Path,
    make_container: Callable[..., Any],
    silent_listener: tuple[int, list[socket.socket]],
) -> None:
    port, accepted = silent_listener
    key = ssh_env()["GPUCONSOLE_TEST_SSH_KEY"]
    config = remote_setup(
        home,
        extra=f'\n[[hosts]]\nname = "dead"\nssh = "root@127.0.0.1:{port}"\n'
        f'identity_file = "{key}"\n',
    )
    c = make_container("sleep 3600")
    started = time.monotonic()
    out = gc(home, config, "ps", "--all-hosts", "--json")
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"ps --all-hosts took {elapsed:.1f} s with a silent host"
    assert out.returncode == 1
    rows = json.loads(out.stdout)
    assert any(r["host"] == "loop" and r["id"] == c.id for r in rows), out.stderr
    assert any(r["host"] == "local" and r["id"] == c.id for r in rows), out.stderr
    assert not any(r["host"] == "dead" for r in rows)
    (line,) = [ln for ln in out.stderr.splitlines() if "dead" in ln]
    assert re.search(r"banner|time", line, re.IGNORECASE), line
    assert accepted, "the silent host was tried"


# ---------------------------------------------------------------------------------------------
# 7. ProxyJump from ~/.ssh/config


@pytest.mark.parametrize("resolver", ["ssh -G", "no ssh client"])
def test_proxyjump_alias_from_ssh_config(
    home: Path,
    tmp_path: Path,
    private_sshd: Callable[..., Any],
    make_container: Callable[..., Any],
    resolver: str,
) -> None:
    sshd = private_sshd()
    key = ssh_env()["GPUCONSOLE_TEST_SSH_KEY"]
    config = remote_setup(
        home,
        (),
        port=sshd.port,
        extra=f'[[hosts]]\nname = "inner"\nssh = "inner"\ndocker_socket = "{engine_socket()}"\n',
    )
    block = f"  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n  IdentityFile {key}\n"
    (home / ".ssh" / "config").write_text(
        f"Host bastion\n{block}\nHost inner\n{block}  ProxyJump bastion\n"
    )
    env: dict[str, str] = {}
    if resolver == "no ssh client":
        empty = tmp_path / "bin"
        empty.mkdir()
        env["PATH"] = str(empty)  # paramiko's SSHConfig resolves the alias instead
    c = make_container("sleep 3600")

    before = logins(sshd.log_path)
    out = gc(home, config, "ps", "--host", "inner", "--json", env=env)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert any(r["host"] == "inner" and r["id"] == c.id for r in rows)
    assert logins(sshd.log_path) - before == 2, "one login to the bastion, one to inner"


# ---------------------------------------------------------------------------------------------
# 8. Launch over SSH, and a tunnel to it


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout).strip()
    except queue.Empty:
        raise AssertionError(f"no first line from the tunnel within {timeout} s") from None


def test_jupyter_launch_over_ssh_and_a_tunnel_to_it(
    home: Path, config: Path, run_label: str, docker_client: Any, memlock_refused: bool
) -> None:
    name = f"gpct-jup-{uuid.uuid4().hex[:8]}"
    result = launch_on_loop(
        home, config, run_label, "--variant", "jupyter", "--image", JUPYTER_IMAGE, "--name", name
    )
    assert result["host"] == "loop" and result["name"] == name
    # The defaults, fitted to the remote engine (probed over the same SSH connection).
    if memlock_refused:
        (note,) = result["notes"]
        assert note.startswith("left out the default ulimit memlock=-1: the engine of host 'loop'")
    else:
        assert result["notes"] == []
    token = result["token"]
    assert token and len(token) >= 32
    (port,) = result["ports"]
    remote_port = port["host_port"]
    assert result["url"] == f"http://127.0.0.1:{remote_port}/?token={token}"

    tunnel = ["tunnel", name, "--host", "loop"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpuconsole", "--config", str(config), *tunnel],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(home)},
    )
    try:
        line = _first_line(proc, 60)
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\?token=(\w+)", line)
        assert match, line
        local_port = int(match.group(1))
        assert match.group(2) == token
        if not bindable(remote_port):  # taken here (docker-proxy): the tunnel picks another
            assert local_port != remote_port
        base = f"http://127.0.0.1:{local_port}"
        assert http_status(f"{base}/api/status", {"Authorization": f"token {token}"}) == 200
        assert http_status(f"{base}/api/status") == 403

        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 5
        assert not accepts(local_port), "the local port is closed with the tunnel"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()

    out = gc(home, config, "rm", "-f", name, "--host", "loop")
    assert out.returncode == 0, out.stderr
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(result["id"])


def launch_on_loop(home: Path, config: Path, run_label: str, *args: str) -> dict[str, Any]:
    """``gpuconsole launch --host loop ARGS --json`` (labelled for clean-up); its result."""
    out = gc(
        home, config, "launch", "--host", "loop", *args, "--json",
        "-l", f"{TEST_LABEL}=1", "-l", run_label,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_a_typed_limit_the_remote_engine_cannot_set_is_refused_before_create(
    home: Path, config: Path, run_label: str, docker_client: Any, memlock_refused: bool
) -> None:
    if not memlock_refused:
        pytest.skip("this engine sets memlock=-1 (it has CAP_SYS_RESOURCE)")
    out = gc(
        home, config, "launch", "--host", "loop", "--image", JUPYTER_IMAGE,
        "--ulimit", "memlock=-1", "-l", f"{TEST_LABEL}=1", "-l", run_label,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert (
        "--ulimit: memlock=-1: the engine of host 'loop' may not raise locked memory" in out.stderr
    )
    assert "use memlock=" in out.stderr and "[create]" not in out.stderr
    assert not docker_client.containers.list(all=True, filters={"label": run_label})


def ssh_launch_on_loop(home: Path, config: Path, run_label: str, image: str) -> dict[str, Any]:
    """An SSH launch on ``loop`` that the test key logs into."""
    key = ssh_env()["GPUCONSOLE_TEST_SSH_KEY"]
    return launch_on_loop(
        home, config, run_label, "--variant", "ssh", "--image", image,
        "--ssh-key", f"{key}.pub", "--name", f"gpct-ssh-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip


@pytest.fixture(scope="module")
def ssh_image(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[str]:
    """The SSH variant of the Debian test image, built on the remote host over SSH."""
    home = tmp_path_factory.mktemp("build") / "home"
    config = remote_setup(home)
    out = gc(
        home,
        config,
        "build-variant",
        "--host",
        "loop",
        "--base",
        DEBIAN_IMAGE,
        "--variant",
        "ssh",
        "--tag",
        SSH_IMAGE,
        "--json",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["tag"] == SSH_IMAGE
    yield SSH_IMAGE
    with contextlib.suppress(Exception):
        docker_client.images.remove(SSH_IMAGE, force=True)


def test_ssh_launch_over_ssh_prints_a_jump_command_that_logs_in(
    home: Path, config: Path, run_label: str, ssh_image: str, tmp_path: Path
) -> None:
    env = ssh_env()
    key = env["GPUCONSOLE_TEST_SSH_KEY"]
    command = ssh_launch_on_loop(home, config, run_label, ssh_image)["ssh_command"]
    assert f"-J root@127.0.0.1:{env['GPUCONSOLE_TEST_SSH_PORT']}" in command

    # The printed command logs in (through the host's sshd to its loopback). -F is passed on
    # to the jump's ssh too: the key, and no known_hosts of this machine touched.
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  BatchMode yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        "  GlobalKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    argv = shlex.split(command)
    assert argv[0] == "ssh"
    login = subprocess.run(
        [argv[0], "-F", str(ssh_config), *argv[1:], "id -un"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == "aiuser"


def test_o_reaches_a_remote_ssh_launch_through_the_console_tunnel(
    home: Path, config: Path, run_label: str, ssh_image: str
) -> None:
    """``o`` in the console: the system ssh into a launch on the remote host, through the
    console's own tunnel (its loopback port is on the host, not here)."""
    from terminals import TmuxConsole, console_argv

    name = ssh_launch_on_loop(home, config, run_label, ssh_image)["name"]
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "xterm-256color"}
    tmux = TmuxConsole(console_argv("--config", str(config), "--host", "loop"), env)
    try:
        tmux.filter_to(name)
        tmux.keys("o")
        shown = tmux.wait_for("(yes/no")
        assert "gpuconsole-loop-" in shown, "the launch's own host key alias"
        tmux.type("yes")
        tmux.keys("Enter")
        tmux.wait_for("aiuser@")
        time.sleep(0.5)
        tmux.type("echo $((6*7)) $USER; exit")
        tmux.keys("Enter")
        tmux.wait_for("session ended (exit 0)")
    finally:
        tmux.close()


# ---------------------------------------------------------------------------------------------
# 9. One SSH connection per CLI run


@pytest.mark.parametrize("command", [("ps", "-a", "--json"), ("gpus", "--json")])
def test_one_login_per_cli_run(
    home: Path,
    private_sshd: Callable[..., Any],
    make_container: Callable[..., Any],
    command: tuple[str, ...],
) -> None:
    sshd = private_sshd()
    config = remote_setup(home, port=sshd.port)
    make_container("while :; do :; done")  # a running container: cgroups and CPU are read
    make_container("sleep 3600", start=False)
    before = logins(sshd.log_path)
    out = gc(home, config, *command, "--host", "loop")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)
    assert logins(sshd.log_path) - before == 1
