"""Helpers shared by the tests (import as ``from support import ...``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEST_IMAGE = os.environ.get("GPUCONSOLE_TEST_IMAGE", "gpuconsole-test/busybox:1")
TEST_LABEL = "gpuconsole-test"


def engine_url() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``gpuconsole ARGS`` as a user runs it: a subprocess against the test engine."""
    full_env = {**os.environ, "DOCKER_HOST": engine_url(), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gpuconsole", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def host_at(
    url: str | None = None, *, gpu: object = False, timeout: int = 10, name: str = "local"
) -> Any:
    """The local host as the console builds it, on the test engine (or ``url``).

    ``gpu``: False for no GPU source (most tests), or a source (a replay) to show.
    """
    from gpuconsole.backend.hosts.open import local_host

    return local_host(url or engine_url(), gpu=gpu, timeout=timeout, name=name)  # type: ignore[arg-type]


def host_of(engine: object, gpu: object = None, name: str = "local") -> Any:
    """A Host around a stand-in engine (the snapshot tests' FakeHost)."""
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.backend.hosts.local import LocalMachine

    return Host(name, LocalMachine(name), engine, gpu)  # type: ignore[arg-type]


def ssh_env() -> dict[str, str]:
    """The loopback sshd the test set-up starts (scripts/test): port, client key, host key."""
    names = ("GPUCONSOLE_TEST_SSH_PORT", "GPUCONSOLE_TEST_SSH_KEY", "GPUCONSOLE_TEST_SSH_HOST_KEY")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        import pytest

        pytest.fail(
            f"{', '.join(missing)} unset: run the suite through scripts/test, which starts the "
            'loopback sshd (or eval "$(scripts/dev-env)")',
            pytrace=False,
        )
    return {n: os.environ[n] for n in names}


def engine_socket() -> str:
    """The test engine's socket path (what a remote host's docker_socket names)."""
    url = engine_url()
    return url.split("://", 1)[1] if url.startswith("unix://") else "/var/run/docker.sock"


def remote_setup(
    home: Path,
    names: tuple[str, ...] = ("loop",),
    *,
    port: int | None = None,
    trusted: bool = True,
    extra: str = "",
) -> Path:
    """A HOME with the loopback sshd as SSH host(s) ``names`` in a gpuconsole config.

    Returns the config path. ``trusted``: its host key is in HOME/.ssh/known_hosts already.
    Run the CLI with ``HOME=home`` so nothing touches the real ~/.ssh.
    """
    env = ssh_env()
    port = port or int(env["GPUCONSOLE_TEST_SSH_PORT"])
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if trusted:
        key_type, key_b64 = Path(env["GPUCONSOLE_TEST_SSH_HOST_KEY"]).read_text().split()[:2]
        (ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{port} {key_type} {key_b64}\n")
    entries = [
        f'[[hosts]]\nname = "{name}"\nssh = "root@127.0.0.1:{port}"\n'
        f'identity_file = "{env["GPUCONSOLE_TEST_SSH_KEY"]}"\n'
        f'docker_socket = "{engine_socket()}"\n'
        for name in names
    ]
    config = home / "gpuconsole.toml"
    config.write_text("\n".join(entries) + extra)
    return config


class GpusFromLabel:
    """A DockerHost wrapping a real engine and adding to its ``snapshot`` (the protocol's call,
    with the protocol's signature) what a host with the NVIDIA runtime would have: a container
    labelled ``LABEL=0,1`` reads as run with ``--gpus device=0,1``."""

    def __init__(self, inner: Any, label: str) -> None:
        self._inner = inner
        self._label = label

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def snapshot(self, all: bool = True, stats: bool = True) -> Any:
        import dataclasses

        from gpuconsole.backend.models import GpuRequest

        snap = self._inner.snapshot(all=all, stats=stats)
        gpus = dict(snap.gpus)
        for c in snap.containers:
            wanted = dict(c.labels).get(self._label)
            if wanted:
                gpus[c.id] = GpuRequest(device_ids=tuple(wanted.split(",")))
        return dataclasses.replace(snap, gpus=gpus)
