"""The SSH variant end to end: build it from a Debian base, launch it, log in with a key only."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from support import TEST_IMAGE, TEST_LABEL, engine_url

DEBIAN_IMAGE = os.environ.get("GPUCONSOLE_TEST_DEBIAN_IMAGE", "gpuconsole-test/debian:bookworm")
DERIVED = "gpuconsole/debian-ssh:bookworm"


def gc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpuconsole", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DOCKER_HOST": engine_url()},
    )


@pytest.fixture(scope="module")
def ssh_image(docker_client: Any) -> Iterator[str]:
    out = gc("build-variant", "--base", DEBIAN_IMAGE, "--variant", "ssh")
    assert out.returncode == 0, out.stdout + out.stderr
    # The build log streams through: the probe's verdict, Docker's steps, the result.
    assert "package manager apt" in out.stdout
    assert "Step 1/" in out.stdout and f"built {DERIVED}" in out.stdout
    yield DERIVED
    with contextlib.suppress(Exception):
        docker_client.images.remove(DERIVED, force=True)


@pytest.fixture
def keypair(tmp_path: Path) -> Path:
    key = tmp_path / "id_test"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def connect(port: int, user: str, **kw: Any) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        "127.0.0.1", port, user, timeout=10, allow_agent=False, look_for_keys=False, **kw
    )
    return client


def test_ssh_variant_key_login_only(ssh_image: str, keypair: Path, docker_client: Any) -> None:
    labels = docker_client.images.get(ssh_image).labels
    assert labels["gpuconsole.variant-image"] == "ssh"
    assert labels["gpuconsole.base"] == DEBIAN_IMAGE

    run_label = f"gpct-run={uuid.uuid4().hex}"
    out = gc(
        "launch",
        "--variant",
        "ssh",
        "--image",
        ssh_image,
        "--ssh-key",
        f"{keypair}.pub",
        "--json",
        "-l",
        run_label,
        "-l",
        f"{TEST_LABEL}=1",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    try:
        (port,) = result["ports"]
        assert port["host_ip"] == "127.0.0.1" and port["container_port"] == 22
        p = port["host_port"]
        assert result["ssh_command"] == f"ssh -p {p} -i {keypair} aiuser@127.0.0.1"
        assert result["url"] is None and result["token"] is None

        client = connect(p, "aiuser", key_filename=str(keypair))
        try:
            _, stdout, _ = client.exec_command("id -un; test -w ~ && echo home-ok")
            assert stdout.read().decode().split() == ["aiuser", "home-ok"]
        finally:
            client.close()

        # No passwords at all: the server offers public key authentication only.
        with pytest.raises(paramiko.BadAuthenticationType) as info:
            connect(p, "aiuser", password="aiuser")
        assert info.value.allowed_types == ["publickey"]
        # No root login, even with the one key the container accepts.
        with pytest.raises(paramiko.AuthenticationException):
            connect(p, "root", key_filename=str(keypair))

        attrs = docker_client.api.inspect_container(result["id"])
        public = Path(f"{keypair}.pub").read_text().split()[1]
        assert public not in json.dumps(attrs["Config"]["Cmd"])  # the key came by environment
        assert attrs["Config"]["Labels"]["gpuconsole.ssh-user"] == "aiuser"
        assert attrs["HostConfig"]["ShmSize"] == 8 * 2**30
    finally:
        docker_client.api.remove_container(result["id"], force=True)


def test_build_variant_refuses_a_base_without_apt(docker_client: Any) -> None:
    out = gc("build-variant", "--base", TEST_IMAGE, "--variant", "ssh", "--tag", "gpct/none:1")
    assert out.returncode == 1
    assert "is not a Debian/Ubuntu image with apt-get" in out.stderr
    with pytest.raises(Exception, match="No such image"):
        docker_client.images.get("gpct/none:1")
    # The probe container is gone too.
    assert not docker_client.containers.list(all=True, filters={"label": "gpuconsole.probe"})


# -- o: into the launch from the console (the system ssh, else paramiko) -----------------------


def _launch_ssh(ssh_image: str, keypair: Path) -> dict[str, Any]:
    out = gc(
        "launch", "--variant", "ssh", "--image", ssh_image, "--ssh-key", f"{keypair}.pub",
        "--json", "-l", f"{TEST_LABEL}=1",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def _console(home: Path, path: str) -> Any:
    from terminals import TmuxConsole, console_argv

    env = {"PATH": path, "HOME": str(home), "TERM": "xterm-256color", "LANG": "C.UTF-8"}
    return TmuxConsole(console_argv("--docker-host", engine_url()), env)


def _login_and_leave(tmux: Any) -> None:
    tmux.wait_for("aiuser@")
    tmux.type("echo $((6*7)) $USER")
    tmux.keys("Enter")
    tmux.wait_for("42 aiuser")
    tmux.type("exit")
    tmux.keys("Enter")


@pytest.mark.parametrize("client", ["system ssh", "paramiko"])
def test_o_opens_an_ssh_session_into_the_launch(
    ssh_image: str, keypair: Path, docker_client: Any, tmp_path: Path, client: str
) -> None:
    result = _launch_ssh(ssh_image, keypair)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    path = os.environ["PATH"]
    if client == "paramiko":
        empty = tmp_path / "bin"
        empty.mkdir()
        path = str(empty)  # no ssh here: the console's own session
    tmux = _console(home, path)
    try:
        tmux.filter_to(result["name"])
        tmux.keys("o")
        # A launch's host key is new: asked with its fingerprint, under the launch's own name.
        shown = tmux.wait_for("(yes/no")
        assert f"gpuconsole-local-{result['id'][:12]}" in shown and "SHA256:" in shown
        tmux.type("yes")
        tmux.keys("Enter")
        _login_and_leave(tmux)
        tmux.wait_for("session ended (exit 0)")
        # Known now: the second time goes straight in.
        tmux.keys("o")
        _login_and_leave(tmux)
        # One entry, for this launch only (ssh may hash the name).
        known = (home / ".ssh" / "known_hosts").read_text().splitlines()
        assert len(known) == 1 and "127.0.0.1" not in known[0]
    finally:
        tmux.close()
        docker_client.api.remove_container(result["id"], force=True)


def test_o_refuses_a_changed_host_key(
    ssh_image: str, keypair: Path, docker_client: Any, tmp_path: Path
) -> None:
    result = _launch_ssh(ssh_image, keypair)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    other = paramiko.Ed25519Key.from_private_key_file(str(keypair))  # not the launch's key
    alias = f"gpuconsole-local-{result['id'][:12]}"
    (home / ".ssh" / "known_hosts").write_text(f"{alias} {other.get_name()} {other.get_base64()}\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    tmux = _console(home, str(empty))
    try:
        tmux.filter_to(result["name"])
        tmux.keys("o")
        shown = tmux.wait_for("CHANGED")
        assert "refused" in shown and "known_hosts:1" in shown
        assert "Filter" in shown, "the console is back, nothing was logged into"
    finally:
        tmux.close()
        docker_client.api.remove_container(result["id"], force=True)
