"""``gpuconsole launch`` as a user runs it, against the real engine and a real Jupyter server."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import TEST_IMAGE, TEST_LABEL, run_cli

JUPYTER_IMAGE = os.environ.get("GPUCONSOLE_TEST_JUPYTER_IMAGE", "gpuconsole-test/jupyter:bookworm")


gc = run_cli


class Run:
    """A unique label per test, so "nothing was created" holds even with other tests running."""

    def __init__(self, docker_client: Any) -> None:
        self.client = docker_client
        self.label = f"gpct-run={uuid.uuid4().hex}"

    def args(self) -> list[str]:
        return ["-l", self.label, "-l", f"{TEST_LABEL}=1"]

    def containers(self) -> list[Any]:
        return self.client.containers.list(all=True, filters={"label": self.label})


@pytest.fixture
def run(docker_client: Any) -> Iterator[Run]:
    r = Run(docker_client)
    yield r
    for c in r.containers():
        c.remove(force=True)


def get(
    url: str, follow: bool = True, headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """(status, final URL or Location, body) of one GET."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, resp.url, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location") or "", ""


def test_jupyter_launch_end_to_end(
    run: Run, docker_client: Any, memlock_refused: bool, tmp_path: Path
) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "hello.ipynb").write_text("{}")
    data = tmp_path / "data"
    data.mkdir()
    out = gc(
        "launch",
        "--image",
        JUPYTER_IMAGE,
        "--memory",
        "1g",
        "--cpus",
        "1.5",
        "--shm-size",
        "256m",
        "-v",
        f"{notebooks}:/workspace/notebooks",
        "-v",
        f"{data}:/data:ro",
        "-e",
        "PROJECT=demo",
        "--ulimit",
        "nofile=4096:8192",
        "--json",
        *run.args(),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {
        *("host", "id", "name", "variant", "url", "token", "ssh_command", "ports", "notes"),
    }
    assert result["variant"] == "jupyter" and result["ssh_command"] is None
    (port,) = result["ports"]
    assert port["host_ip"] == "127.0.0.1" and port["container_port"] == 8888
    host_port, token = port["host_port"], result["token"]
    assert len(token) >= 32
    base = f"http://127.0.0.1:{host_port}"
    assert result["url"] == f"{base}/?token={token}"
    assert "[wait] waiting for the Jupyter server" in out.stderr

    # The URL logs the browser in: it lands on the notebook list, showing the mounted files.
    status, final, _ = get(result["url"])
    assert status == 200 and final.startswith(f"{base}/tree")
    auth = {"Authorization": f"token {token}"}
    status, _, listing = get(f"{base}/api/contents/workspace/notebooks", headers=auth)
    assert status == 200 and "hello.ipynb" in listing
    # Without the token: the API refuses, pages send you to the login form.
    assert get(f"{base}/api/status", follow=False)[0] == 403
    status, location, _ = get(f"{base}/tree", follow=False)
    assert status == 302 and location.startswith("/login")
    assert get(f"{base}/api/status", headers={"Authorization": "token wrong"})[0] == 403

    attrs = docker_client.api.inspect_container(result["id"])
    hc, config = attrs["HostConfig"], attrs["Config"]
    assert hc["Memory"] == 2**30
    assert hc["NanoCpus"] == 1_500_000_000
    assert hc["ShmSize"] == 256 * 2**20
    assert {u["Name"]: (u["Soft"], u["Hard"]) for u in hc["Ulimits"]}["nofile"] == (4096, 8192)
    # The defaults memlock and stack beside it — memlock only where the engine can set it.
    names = {u["Name"] for u in hc["Ulimits"]}
    assert names == ({"stack", "nofile"} if memlock_refused else {"memlock", "stack", "nofile"})
    assert bool(result["notes"]) == memlock_refused
    assert hc["PortBindings"] == {"8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(host_port)}]}
    assert not hc["DeviceRequests"]
    assert hc["IpcMode"] != "host"
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/workspace/notebooks"]["RW"] and not mounts["/data"]["RW"]
    labels = config["Labels"]
    assert labels["gpuconsole.variant"] == "jupyter"
    assert labels["gpuconsole.port"] == str(host_port)
    assert labels["gpuconsole.token-env"] == "JUPYTER_TOKEN"
    assert token not in json.dumps(labels)
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["JUPYTER_TOKEN"] == token and env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert env["PROJECT"] == "demo"

    # The token is in no process's argv: not in Cmd, not in docker top, not in /proc inside.
    assert token not in json.dumps([config["Cmd"], config["Entrypoint"], attrs["Args"]])
    assert "token=" not in json.dumps(config["Cmd"]).lower()
    top = docker_client.api.top(result["id"], ps_args="-eo pid,args")
    assert any("jupyter" in " ".join(p) for p in top["Processes"])
    assert token not in json.dumps(top)
    container = docker_client.containers.get(result["id"])
    code, argv = container.exec_run(["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"])
    assert code == 0 and b"jupyter" in argv and token.encode() not in argv
    # ... and not in the server's log, even after a browser used the tokened URL.
    assert token.encode() not in container.logs()


def test_gpu_launch_fails_in_words_and_leaves_nothing(run: Run) -> None:
    out = gc("launch", "--variant", "plain", "--image", TEST_IMAGE, "--gpus", "all", *run.args())
    assert out.returncode == 1
    assert "preflight error: the engine has no NVIDIA container runtime" in out.stderr
    assert "install nvidia-container-toolkit" in out.stderr and "--gpus none" in out.stderr
    assert "[cleanup] removed the failed container" in out.stderr
    assert not run.containers()


def launch_fails(run: Run, *args: str) -> str:
    out = gc("launch", *args, *run.args())
    assert out.returncode == 2, out.stderr
    assert not run.containers()
    assert out.stdout == ""
    return out.stderr


def test_bad_size(run: Run) -> None:
    err = launch_fails(run, "--image", TEST_IMAGE, "--memory", "12XB")
    assert "--memory: '12XB' has an unknown unit 'XB'" in err and "512m, 32g, 1.5GiB" in err


def test_too_many_cpus(run: Run) -> None:
    err = launch_fails(run, "--image", TEST_IMAGE, "--cpus", "4096")
    assert "--cpus: '4096' is more than host 'local' has" in err


def test_specific_gpus_without_gpu_data(run: Run) -> None:
    err = launch_fails(run, "--image", TEST_IMAGE, "--gpus", "0,1")
    assert "--gpus: cannot check GPU 0,1: host 'local' reports no GPUs" in err
    assert "use all or none" in err


def test_port_in_use(run: Run) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        err = launch_fails(run, "--image", JUPYTER_IMAGE, "-p", str(port))
    assert f"--publish: 127.0.0.1:{port} is in use by another program" in err


def test_name_in_use(run: Run, make_container: Any) -> None:
    existing = make_container()
    err = launch_fails(run, "--image", TEST_IMAGE, "--name", existing.name)
    assert f"--name: a container named '{existing.name}' already exists" in err


def test_missing_mount_source_then_mkdir(run: Run, tmp_path: Path) -> None:
    missing = tmp_path / "not" / "there"
    args = ["--variant", "plain", "--image", TEST_IMAGE, "-v", f"{missing}:/data"]
    err = launch_fails(run, *args)
    assert f"--volume: {missing} does not exist" in err and "--mkdir" in err
    assert not missing.exists()
    out = gc("launch", *args, "--mkdir", *run.args(), "--", "sleep", "600")
    assert out.returncode == 0, out.stderr
    assert missing.is_dir() and f"created {missing}" in out.stderr
    (container,) = run.containers()
    assert container.attrs["Mounts"][0]["Source"] == str(missing)


def test_image_missing_and_not_pullable(run: Run) -> None:
    err = launch_fails(run, "--image", "gpuconsole-test/no-such-image:1")
    assert "--image: 'gpuconsole-test/no-such-image:1' is not on host 'local'" in err
    assert "pulling it failed" in err
    assert "[pull] pulling gpuconsole-test/no-such-image:1" in err


def test_all_errors_at_once(run: Run) -> None:
    err = launch_fails(
        run,
        "--variant",
        "notebook",
        "--memory",
        "lots",
        "--shm-size",
        "1x",
        "--ulimit",
        "nofiles=1",
        "-e",
        "NVIDIA_VISIBLE_DEVICES=all",
        "-p",
        "http",
    )
    for flag in ("--variant", "--image", "--memory", "--shm-size", "--ulimit", "--env"):
        assert f"gpuconsole: {flag}: " in err, flag
    assert "use one of jupyter, ssh, plain" in err
    assert "no image given" in err


def test_warnings_for_untagged_image_and_no_volume(run: Run) -> None:
    out = gc("launch", "--variant", "plain", "--image", "gpuconsole-test/busybox", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "warning: --image: 'gpuconsole-test/busybox' has no tag" in out.stderr
    assert "warning: --volume: no volume mounted" in out.stderr
    assert out.stdout.startswith("would launch plain-")
    assert not run.containers()


def test_profile_launch_and_save(run: Run, docker_client: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        "# team settings\n[ui]\nrefresh_seconds = 3.0\n\n"
        "[profiles.small]\n"
        'variant = "plain"\n'
        f'image = "{TEST_IMAGE}"\n'
        'memory = "64m"\ncpus = 1\n'
        f'volumes = ["{tmp_path}:/work"]\n'
    )
    out = gc(
        "--config",
        str(cfg),
        "launch",
        "--profile",
        "small",
        "--json",
        *run.args(),
        "--",
        "sleep",
        "600",
    )
    assert out.returncode == 0, out.stderr
    attrs = docker_client.api.inspect_container(json.loads(out.stdout)["id"])
    assert attrs["HostConfig"]["Memory"] == 64 * 2**20
    assert attrs["HostConfig"]["NanoCpus"] == 10**9
    assert attrs["Config"]["Labels"]["gpuconsole.profile"] == "small"
    assert attrs["Mounts"][0]["Destination"] == "/work"

    out = gc(
        "--config",
        str(cfg),
        "launch",
        "--profile",
        "small",
        "--memory",
        "128m",
        "--save-profile",
        "bigger",
        "--dry-run",
    )
    assert out.returncode == 0, out.stderr
    text = cfg.read_text()
    assert text.startswith("# team settings\n[ui]\nrefresh_seconds = 3.0\n")
    assert "[profiles.bigger]" in text and 'memory = "128m"' in text
    assert oct(cfg.stat().st_mode & 0o777) == "0o600"
    out = gc("--config", str(cfg), "launch", "--profile", "nope")
    assert (
        out.returncode == 2 and "no profile 'nope'" in out.stderr and "bigger, small" in out.stderr
    )


def test_read_only_refuses_launch(run: Run) -> None:
    out = gc("--read-only", "launch", "--image", TEST_IMAGE, *run.args())
    assert out.returncode == 1 and "read-only" in out.stderr
    assert not run.containers()


# -- adaptive defaults: a default never breaks a launch; a typed value is checked first --


def test_a_launch_with_the_defaults_comes_up_and_names_what_it_left_out(
    run: Run, docker_client: Any, memlock_refused: bool
) -> None:
    """`gpuconsole launch --image IMG`, nothing else: a default the engine cannot set (memlock
    unlimited, without CAP_SYS_RESOURCE) is left out with one line saying so."""
    out = gc("launch", "--image", JUPYTER_IMAGE, *run.args())
    assert out.returncode == 0, out.stderr
    (container,) = run.containers()
    assert container.status == "running"
    assert f"{container.name} ({container.id[:12]}) is up on local" in out.stdout
    ulimits = {u["Name"]: u["Soft"] for u in container.attrs["HostConfig"]["Ulimits"]}
    assert ulimits["stack"] == 67108864
    notes = [line for line in out.stdout.splitlines() if line.startswith("  Note:")]
    if memlock_refused:
        (note,) = notes
        assert "left out the default ulimit memlock=-1" in note
        assert "may not raise locked memory above" in note and "CAP_SYS_RESOURCE" in note
        assert "memlock" not in ulimits
        label = container.attrs["Config"]["Labels"]["gpuconsole.notes"]
        assert note.removeprefix("  Note:").strip() == label
    else:
        assert not notes and ulimits["memlock"] == -1


def test_a_typed_limit_the_engine_cannot_set_is_refused_before_anything_is_created(
    run: Run, memlock_refused: bool
) -> None:
    if not memlock_refused:
        pytest.skip("this engine sets memlock=-1 (it has CAP_SYS_RESOURCE)")
    err = launch_fails(run, "--image", JUPYTER_IMAGE, "--ulimit", "memlock=-1")
    assert "gpuconsole: --ulimit: memlock=-1: the engine of host 'local' may not raise" in err
    assert "use memlock=" in err and "or less, leave memlock out" in err
    assert "[create]" not in err
