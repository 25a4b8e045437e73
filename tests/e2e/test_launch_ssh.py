"""The SSH variant end to end: build it from a Debian base, launch it, log in with a key only."""

from __future__ import annotations

import contextlib
import json
import os
import resource
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


def memlock() -> list[str]:
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    return [] if hard == resource.RLIM_INFINITY else ["--ulimit", f"memlock={hard}"]


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
        *memlock(),
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
