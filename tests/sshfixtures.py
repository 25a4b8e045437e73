"""Shared fixtures for the SSH tests: the loopback sshd that ``scripts/dev-env`` starts, and
private sshd instances (for tests that stop, refuse or reconfigure a server).

Run ``eval "$(scripts/dev-env)"`` first. A missing variable fails the test (it does not skip):
these tests are the proof that SSH works.

* ``ssh_env``: an :class:`SshEnv` (port, client key, server host key, sshd log, Docker socket),
  with ``connect(port=None)`` -> an authenticated ``paramiko.Transport`` (host key checked) and
  ``connector(port=None)`` -> a zero-argument callable doing the same.
* ``ssh_transport``: a connected transport to the dev sshd, closed afterwards.
* ``private_sshd``: a factory ``private_sshd(*extra_config_lines)`` -> :class:`PrivateSshd`, a
  second sshd (own port, own log, the dev sshd's keys) that can be SIGSTOPped as a whole; all
  are continued and killed at teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest

_ENV_VARS = (
    "GPUCONSOLE_TEST_SSH_PORT",
    "GPUCONSOLE_TEST_SSH_KEY",
    "GPUCONSOLE_TEST_SSH_HOST_KEY",
    "GPUCONSOLE_TEST_SSHD_LOG",
    "DOCKER_HOST",
)


@dataclass(frozen=True)
class SshEnv:
    port: int
    key_path: str
    host_key_path: str
    sshd_log: str
    docker_host: str
    host: str = "127.0.0.1"
    user: str = "root"

    @property
    def docker_socket(self) -> str:
        """The Docker engine's unix socket path (from DOCKER_HOST)."""
        return self.docker_host.removeprefix("unix://")

    @property
    def sshd_config(self) -> Path:
        """The dev sshd's config (scripts/dev-env writes it beside the keys)."""
        return Path(self.key_path).parent / "sshd_config"

    def host_key_base64(self) -> str:
        return Path(self.host_key_path).read_text().split()[1]

    def connect(self, port: int | None = None, timeout: float = 5.0) -> paramiko.Transport:
        """An authenticated transport to the loopback sshd (or another on ``port``)."""
        sock = socket.create_connection((self.host, port or self.port), timeout)
        t = paramiko.Transport(sock)
        t.banner_timeout = timeout
        t.auth_timeout = timeout
        try:
            t.start_client(timeout=timeout)
            key = t.get_remote_server_key()  # raises when negotiation did not finish in time
            if key.get_base64() != self.host_key_base64():
                raise paramiko.SSHException("the server's host key is not the test host key")
            t.auth_publickey(self.user, paramiko.Ed25519Key.from_private_key_file(self.key_path))
        except BaseException:
            t.close()
            raise
        return t

    def connector(
        self, port: int | None = None, timeout: float = 5.0
    ) -> Callable[[], paramiko.Transport]:
        return lambda: self.connect(port, timeout)

    def log_lines(self, path: str | None = None) -> list[str]:
        return Path(path or self.sshd_log).read_text(errors="replace").splitlines()


@pytest.fixture(scope="session")
def ssh_env() -> SshEnv:
    missing = [name for name in _ENV_VARS if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f'{", ".join(missing)} not set: run `eval "$(scripts/dev-env)"` first '
            "(it starts the loopback sshd and the test Docker engine)"
        )
    return SshEnv(
        port=int(os.environ["GPUCONSOLE_TEST_SSH_PORT"]),
        key_path=os.environ["GPUCONSOLE_TEST_SSH_KEY"],
        host_key_path=os.environ["GPUCONSOLE_TEST_SSH_HOST_KEY"],
        sshd_log=os.environ["GPUCONSOLE_TEST_SSHD_LOG"],
        docker_host=os.environ["DOCKER_HOST"],
    )


@pytest.fixture
def ssh_transport(ssh_env: SshEnv) -> Iterator[paramiko.Transport]:
    t = ssh_env.connect()
    yield t
    t.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class PrivateSshd:
    """An sshd of its own (foreground, ``-D``), from the dev sshd's config plus extra lines."""

    def __init__(
        self,
        env: SshEnv,
        workdir: Path,
        extra: tuple[str, ...],
        setenv: dict[str, str] | None = None,
    ) -> None:
        self.port = _free_port()
        self.log_path = workdir / "sshd.log"
        config = workdir / "sshd_config"
        lines = []
        for line in env.sshd_config.read_text().splitlines():
            key = line.split(" ", 1)[0].lower()
            if key == "port":
                line = f"Port {self.port}"
            elif key == "pidfile":
                line = f"PidFile {workdir / 'sshd.pid'}"
            elif key == "setenv" and setenv:  # sessions' environment: the extra variables too
                line += "".join(f" {k}={v}" for k, v in setenv.items())
            lines.append(line)
        lines.extend(extra)
        config.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_ready()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log_path.read_text() if self.log_path.exists() else ""
                raise RuntimeError(f"private sshd exited {self.proc.returncode}: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                    s.settimeout(2)
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("private sshd did not start")

    def tree(self) -> list[int]:
        """The listener and every process below it (per-connection sshd children, commands)."""
        children = _children()
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def _signal_tree(self, sig: int) -> None:
        seen: set[int] = set()
        while True:  # repeat: a process may have forked meanwhile
            fresh = [pid for pid in self.tree() if pid not in seen]
            if not fresh:
                return
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            seen.update(fresh)

    def stop(self) -> None:
        """SIGSTOP the whole server: listener and the children serving connections."""
        self._signal_tree(signal.SIGSTOP)

    def cont(self) -> None:
        self._signal_tree(signal.SIGCONT)

    def sshd_pids(self) -> list[int]:
        """The listener and the per-connection sshd processes, not the commands they run."""
        return [pid for pid in self.tree() if _comm(pid) == "sshd"]

    def freeze_sshd(self) -> list[int]:
        """The server stops answering; the commands it started run on. (Freezing a remote
        shell could freeze a lock of the remote user's — pyenv's rehash lock in this machine's
        root .bashrc — that every other login then waits for.) Returns what to thaw."""
        pids = self.sshd_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return pids

    @staticmethod
    def thaw(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is not None:
            return
        pids = self.tree()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def private_sshd(
    ssh_env: SshEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., PrivateSshd]]:
    started: list[PrivateSshd] = []

    def start(*extra: str, setenv: dict[str, str] | None = None) -> PrivateSshd:
        sshd = PrivateSshd(ssh_env, tmp_path_factory.mktemp("sshd"), extra, setenv)
        started.append(sshd)
        return sshd

    yield start
    for sshd in started:
        sshd.kill()


# -- the console's side: a HOME that trusts the loopback sshd, hosts on it, its GPU list -------


@pytest.fixture
def ssh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME whose known_hosts trusts the loopback sshd; the real ~/.ssh is never read."""
    from support import remote_setup

    home = tmp_path / "home"
    remote_setup(home)
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def apps_file() -> Iterator[Path]:
    """The stand-in nvidia-smi's compute-apps list on the remote host; restored after."""
    path = Path(os.environ.get("GPUCONSOLE_TEST_SMI_APPS", ""))
    if not path.is_file():
        pytest.fail("GPUCONSOLE_TEST_SMI_APPS unset: run through scripts/test", pytrace=False)
    before = path.read_text()
    yield path
    path.write_text(before)


def trust_port(home: Path, port: int) -> None:
    """A private sshd serves the test host key on its own port: trust it there too."""
    known = home / ".ssh" / "known_hosts"
    first = known.read_text().splitlines()[0]
    _, rest = first.split(" ", 1)
    known.write_text(known.read_text() + f"[127.0.0.1]:{port} {rest}\n")


def loop_host(name: str = "loop", port: int | None = None, **options: Any) -> Any:
    """An SSH host on the loopback sshd (or a private one on ``port``), as open_hosts makes it.

    ``options``: ``options=SshOptions(...)`` (default: fast probes) and ``gpu=...``.
    """
    from gpuconsole.backend.hosts.open import ssh_host
    from gpuconsole.backend.hosts.spec import HostSpec, SshOptions

    from support import engine_socket, ssh_env

    env = ssh_env()
    spec = HostSpec(
        name,
        ssh=f"root@127.0.0.1:{port or env['GPUCONSOLE_TEST_SSH_PORT']}",
        identity_file=env["GPUCONSOLE_TEST_SSH_KEY"],
        docker_socket=engine_socket(),
    )
    fast = SshOptions(probe_interval=1.0, probe_timeout=1.0, down_after=2)
    return ssh_host(spec, options.pop("options", fast), **options)
