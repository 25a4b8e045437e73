"""Opening SSH connections against the real loopback sshd (``eval "$(scripts/dev-env)"``):
host-key trust, ProxyJump and ProxyCommand, timeouts, authentication, and MaxStartups.

Nothing here touches the machine's ~/.ssh: HOME is a temporary directory, the known_hosts file
is named by the test's own ssh config, and SSH_AUTH_SOCK is unset unless a test starts an agent.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.hosts.machine import MachineUnreachable
from gpuconsole.backend.ssh.config import SshTarget, resolve_target
from gpuconsole.backend.ssh.connect import (
    ACTIVE_CHECK_S,
    HANDSHAKES,
    SshAuthFailed,
    jump_transports,
    open_transport,
)
from gpuconsole.backend.ssh.trust import HostKeyChanged, HostKeyRevoked, HostKeyUnknown

RELAY = """\
import os, socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def up():
    while True:
        data = os.read(0, 65536)
        if not data:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(data)
threading.Thread(target=up, daemon=True).start()
while True:
    data = s.recv(65536)
    if not data:
        break
    os.write(1, data)
"""


@dataclasses.dataclass(frozen=True)
class Loopback:
    port: int
    key: str
    host_key_pub: str
    workdir: Path
    config: Path
    known_hosts: Path

    @property
    def host_key_base64(self) -> str:
        return Path(self.host_key_pub).read_text().split()[1]

    @property
    def known_line(self) -> str:
        return f"[127.0.0.1]:{self.port} ssh-ed25519 {self.host_key_base64}\n"

    def target(self, alias: str = "dev", **changes: Any) -> SshTarget:
        target = resolve_target(alias, config_path=str(self.config))
        return dataclasses.replace(target, **changes)


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f'{name} is not set: run `eval "$(scripts/dev-env)"` first (it starts the loopback '
            "sshd these tests connect to)"
        )
    return value


def _keygen(path: Path, passphrase: str = "") -> Path:
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        pytest.fail("ssh-keygen is missing: apt-get install -y openssh-client")
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)], check=True)
    return path


@pytest.fixture
def lo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Loopback:
    port = int(_env("GPUCONSOLE_TEST_SSH_PORT"))
    key, host_key = _env("GPUCONSOLE_TEST_SSH_KEY"), _env("GPUCONSOLE_TEST_SSH_HOST_KEY")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    known_hosts = tmp_path / "known_hosts"
    config = tmp_path / "ssh_config"
    config.write_text(
        f"""\
Host dev
    HostName 127.0.0.1
    Port {port}
Host bastion
    HostName localhost
    Port {port}
Host viajump
    HostName 127.0.0.1
    Port {port}
    ProxyJump bastion
Host viatwo
    HostName 127.0.0.1
    Port {port}
    ProxyJump bastion,root@localhost:{port}
Host viacmd
    HostName 127.0.0.1
    Port {port}
    ProxyCommand {sys.executable} {relay} %h %p
Host *
    User root
    IdentityFile {key}
    IdentitiesOnly yes
    UserKnownHostsFile {known_hosts}
"""
    )
    return Loopback(port, key, host_key, tmp_path, config, known_hosts)


def _run(transport: paramiko.Transport, command: str) -> bytes:
    channel = transport.open_session(timeout=5)
    try:
        channel.exec_command(command)
        return channel.makefile("rb").read()
    finally:
        channel.close()


def _fingerprint(pub: str) -> str:
    keygen = shutil.which("ssh-keygen")
    assert keygen is not None
    out = subprocess.run([keygen, "-lf", pub], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


# ---------------------------------------------------------------------------------------------
# Host keys


def test_unknown_key_is_refused_and_known_hosts_untouched(lo: Loopback) -> None:
    with pytest.raises(HostKeyUnknown) as info:
        open_transport(lo.target(), host_name="dev")
    assert not lo.known_hosts.exists()
    err = info.value
    assert (err.hostname, err.port, err.known_hosts_path) == (
        "127.0.0.1",
        lo.port,
        str(lo.known_hosts),
    )
    assert err.fingerprint == _fingerprint(lo.host_key_pub)
    assert err.fingerprint in str(err) and "--accept-new-host-key" in str(err)
    assert "'dev'" in str(err) and f"root@127.0.0.1:{lo.port}" in str(err)

    lo.known_hosts.write_text("other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJXvR1Wu5T01")
    before = lo.known_hosts.read_bytes()
    with pytest.raises(HostKeyUnknown):
        open_transport(lo.target(), host_name="dev", on_unknown_key=lambda err: False)
    assert lo.known_hosts.read_bytes() == before


def test_accept_new_adds_exactly_one_line(lo: Loopback) -> None:
    transport = open_transport(lo.target(), host_name="dev", accept_new_host_key=True)
    try:
        assert transport.is_authenticated()
        assert _run(transport, "echo ok") == b"ok\n"
    finally:
        transport.close()
    assert lo.known_hosts.read_text() == lo.known_line

    # now known: no question, nothing added
    def never(err: HostKeyUnknown) -> bool:
        raise AssertionError("asked about a known key")

    transport = open_transport(lo.target(), host_name="dev", on_unknown_key=never)
    transport.close()
    assert lo.known_hosts.read_text() == lo.known_line


def test_on_unknown_key_is_asked(lo: Loopback) -> None:
    asked: list[HostKeyUnknown] = []

    def yes(err: HostKeyUnknown) -> bool:
        asked.append(err)
        return True

    transport = open_transport(lo.target(), host_name="dev", on_unknown_key=yes)
    transport.close()
    assert [(e.hostname, e.port, e.key.get_base64()) for e in asked] == [
        ("127.0.0.1", lo.port, lo.host_key_base64)
    ]
    assert lo.known_hosts.read_text() == lo.known_line


def test_changed_key_is_refused_with_file_and_line(lo: Loopback) -> None:
    wrong = _keygen(lo.workdir / "wrong_host_key")
    wrong_b64 = Path(f"{wrong}.pub").read_text().split()[1]
    lo.known_hosts.write_text(
        f"other.example ssh-ed25519 {wrong_b64}\n[127.0.0.1]:{lo.port} ssh-ed25519 {wrong_b64}\n"
    )
    before = lo.known_hosts.read_bytes()
    with pytest.raises(HostKeyChanged) as info:
        open_transport(
            lo.target(), host_name="dev", accept_new_host_key=True, on_unknown_key=lambda e: True
        )
    message = str(info.value)
    assert f"{lo.known_hosts} line 2" in message and "attack" in message
    assert f"ssh-keygen -R '[127.0.0.1]:{lo.port}'" in message
    assert lo.known_hosts.read_bytes() == before


def test_revoked_key_is_refused(lo: Loopback) -> None:
    lo.known_hosts.write_text(lo.known_line + f"@revoked * ssh-ed25519 {lo.host_key_base64}\n")
    with pytest.raises(HostKeyRevoked, match="REVOKED"):
        open_transport(lo.target(), host_name="dev", accept_new_host_key=True)


# ---------------------------------------------------------------------------------------------
# ProxyJump and ProxyCommand


def test_proxy_jump_verifies_the_jump_host_first(lo: Loopback) -> None:
    with pytest.raises(HostKeyUnknown) as info:
        open_transport(lo.target("viajump"), host_name="gpu")
    assert (info.value.hostname, info.value.port) == ("localhost", lo.port)
    assert not lo.known_hosts.exists()

    lo.known_hosts.write_text(f"[localhost]:{lo.port} ssh-ed25519 {_other_key(lo)}\n")
    with pytest.raises(HostKeyChanged, match=r"localhost port \d+"):
        open_transport(lo.target("viajump"), host_name="gpu", accept_new_host_key=True)


def test_unreachable_jump_host_is_named(lo: Loopback) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    target = lo.target("viajump", proxy_jump=(f"root@127.0.0.1:{free}",))
    with pytest.raises(MachineUnreachable) as info:
        open_transport(target, host_name="gpu")
    assert info.value.reason == f"jump host 'root@127.0.0.1:{free}': connection refused"
    assert info.value.address == f"root@127.0.0.1:{free}"


def _other_key(lo: Loopback) -> str:
    path = _keygen(lo.workdir / f"other_{time.monotonic_ns()}")
    return Path(f"{path}.pub").read_text().split()[1]


def test_proxy_jump_through_the_loopback_sshd(lo: Loopback) -> None:
    asked: list[tuple[str, int]] = []

    def yes(err: HostKeyUnknown) -> bool:
        asked.append((err.hostname, err.port))
        return True

    transport = open_transport(lo.target("viajump"), host_name="gpu", on_unknown_key=yes)
    jumps = jump_transports(transport)
    try:
        assert asked == [("localhost", lo.port), ("127.0.0.1", lo.port)]
        assert len(jumps) == 1 and jumps[0].is_authenticated()
        assert isinstance(transport.sock, paramiko.Channel)  # tunnelled through the bastion
        assert _run(transport, "echo through") == b"through\n"
    finally:
        transport.close()
    assert not jumps[0].is_active()  # closing the last hop closed the chain
    lines = sorted(lo.known_hosts.read_text().splitlines())
    assert lines == sorted(
        [
            f"[localhost]:{lo.port} ssh-ed25519 {lo.host_key_base64}",
            lo.known_line.strip(),
        ]
    )


def test_two_jumps_and_the_end_of_the_last_hop_closes_all(lo: Loopback) -> None:
    transport = open_transport(lo.target("viatwo"), host_name="gpu", accept_new_host_key=True)
    jumps = jump_transports(transport)
    assert len(jumps) == 2 and all(j.is_active() for j in jumps)
    assert _run(transport, "echo two") == b"two\n"
    # the far end of the last hop goes away (its sshd is killed; nobody calls close()): the
    # last hop's thread ends, and takes the jump transports with it
    channel = transport.open_session(timeout=5)
    channel.exec_command("kill -9 $PPID")
    chain = [transport, *jumps]
    deadline = time.monotonic() + 5
    while any(t.is_active() for t in chain) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [t.is_active() for t in chain] == [False, False, False]


def test_proxy_command(lo: Loopback) -> None:
    transport = open_transport(lo.target("viacmd"), host_name="gpu", accept_new_host_key=True)
    try:
        assert isinstance(transport.sock, paramiko.ProxyCommand)
        assert _run(transport, "echo cmd") == b"cmd\n"
    finally:
        transport.close()
    assert lo.known_hosts.read_text() == lo.known_line


# ---------------------------------------------------------------------------------------------
# Network failures


def test_silent_server_fails_within_the_timeout(lo: Loopback) -> None:
    with socket.socket() as listener:  # accepts TCP (backlog), never says a word
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(MachineUnreachable) as info:
            open_transport(lo.target(port=port), host_name="mute", timeout=2)
        elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    assert info.value.reason == "no SSH banner within 2 s"
    assert str(info.value).startswith(f"cannot reach host 'mute' at root@127.0.0.1:{port}")


def test_refused_and_unknown_name(lo: Loopback) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with pytest.raises(MachineUnreachable) as info:
        open_transport(lo.target(port=free), host_name="off")
    assert type(info.value) is MachineUnreachable
    assert info.value.reason == "connection refused" and str(free) in info.value.hint

    with pytest.raises(MachineUnreachable) as info:
        open_transport(lo.target(hostname="no-such-host.invalid"), host_name="typo")
    assert "not known" in info.value.reason and "no-such-host.invalid" in info.value.reason


# ---------------------------------------------------------------------------------------------
# Authentication


def _known(lo: Loopback) -> None:
    lo.known_hosts.write_text(lo.known_line)


def test_wrong_key_is_an_auth_failure(lo: Loopback) -> None:
    _known(lo)
    wrong = _keygen(lo.workdir / "id_wrong")
    with pytest.raises(SshAuthFailed) as info:
        open_transport(lo.target(identity_files=(str(wrong),)), host_name="dev")
    message = str(info.value)
    assert f"root@127.0.0.1:{lo.port}" in message and str(wrong) in message
    assert "ssh-copy-id" in message and "IdentityFile" in message
    assert isinstance(info.value, MachineUnreachable) and isinstance(info.value, GpuconsoleError)


def test_encrypted_key_is_skipped_with_a_note(lo: Loopback) -> None:
    _known(lo)
    locked = _keygen(lo.workdir / "id_locked", passphrase="secret")
    target = lo.target(identity_files=(str(locked), lo.key))
    transport = open_transport(target, host_name="dev")  # the next key works
    transport.close()
    with pytest.raises(SshAuthFailed, match="encrypted") as info:
        open_transport(lo.target(identity_files=(str(locked),)), host_name="dev")
    assert "no key could be offered" in str(info.value)


@pytest.fixture
def agent(lo: Loopback) -> Iterator[str]:
    """A real ssh-agent holding the test key; its socket path."""
    ssh_agent, ssh_add = shutil.which("ssh-agent"), shutil.which("ssh-add")
    if ssh_agent is None or ssh_add is None:
        pytest.fail("ssh-agent is missing: apt-get install -y openssh-client")
    sock = str(lo.workdir / "agent.sock")
    proc = subprocess.Popen(
        [ssh_agent, "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
        subprocess.run(
            [ssh_add, lo.key],
            env={**os.environ, "SSH_AUTH_SOCK": sock},
            capture_output=True,
            check=True,
        )
        yield sock
    finally:
        proc.terminate()
        proc.wait(5)


def test_agent_by_path_by_environment_and_disabled(
    lo: Loopback, agent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _known(lo)
    no_files: dict[str, Any] = {"identity_files": (), "identities_only": False}
    transport = open_transport(lo.target(identity_agent=agent, **no_files), host_name="dev")
    transport.close()

    monkeypatch.setenv("SSH_AUTH_SOCK", agent)
    transport = open_transport(lo.target(identity_agent=None, **no_files), host_name="dev")
    transport.close()

    with pytest.raises(SshAuthFailed, match="no key could be offered"):
        open_transport(lo.target(identity_agent="none", **no_files), host_name="dev")

    # IdentitiesOnly: agent keys that are not one of the listed files are not offered
    other = _keygen(lo.workdir / "id_other")
    with pytest.raises(SshAuthFailed) as info:
        open_transport(
            lo.target(identity_agent=agent, identity_files=(str(other),), identities_only=True),
            host_name="dev",
        )
    assert info.value.tried == (str(other),)


# ---------------------------------------------------------------------------------------------
# Concurrency: the handshake limiter and sshd's MaxStartups


@pytest.fixture
def strict_sshd(lo: Loopback) -> Iterator[int]:
    """A throwaway sshd (the dev one's config) dropping every 11th unauthenticated connection."""
    dev_config = Path(lo.key).parent / "sshd_config"
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lines = []
    for line in dev_config.read_text().splitlines():
        keyword = line.split(" ", 1)[0].lower()
        if keyword == "port":
            line = f"Port {port}"
        elif keyword == "pidfile":
            line = f"PidFile {lo.workdir / 'strict_sshd.pid'}"
        lines.append(line)
    lines.append("MaxStartups 10")
    config = lo.workdir / "strict_sshd_config"
    config.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [sshd, "-D", "-f", str(config), "-E", str(lo.workdir / "strict_sshd.log")],
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 1) as s:
                    s.settimeout(2)
                    if s.recv(4) == b"SSH-":
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"throwaway sshd did not start: {lo.workdir / 'strict_sshd.log'}")
                time.sleep(0.05)
        lo.known_hosts.write_text(lo.known_line + lo.known_line.replace(str(lo.port), str(port)))
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


def _concurrently(count: int, connect: Callable[[], paramiko.Transport]) -> list[object]:
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = connect()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _close_all(results: list[object]) -> None:
    for r in results:
        if isinstance(r, paramiko.Transport):
            r.close()


def test_twelve_at_once_through_the_default_limiter(lo: Loopback, strict_sshd: int) -> None:
    target = lo.target(port=strict_sshd)
    results = _concurrently(12, lambda: open_transport(target, host_name="many"))
    try:
        failures = [r for r in results if not isinstance(r, paramiko.Transport)]
        assert failures == []
        assert all(r.is_authenticated() for r in results)  # type: ignore[attr-defined]
    finally:
        _close_all(results)
    # the default limiter is free again
    assert HANDSHAKES.acquire(blocking=False)
    HANDSHAKES.release()


def test_without_the_limiter_sshd_drops_connections(lo: Loopback, strict_sshd: int) -> None:
    """The control experiment: what the limiter prevents does happen without it."""
    target = lo.target(port=strict_sshd)
    unlimited = threading.Semaphore(100)
    results = _concurrently(30, lambda: open_transport(target, host_name="many", limiter=unlimited))
    try:
        dropped = [r for r in results if isinstance(r, MachineUnreachable)]
        assert dropped, "sshd accepted 30 simultaneous handshakes despite MaxStartups 10"
        assert all("before its SSH banner" in str(d) for d in dropped), dropped
    finally:
        _close_all(results)


def test_limiter_is_held_only_until_authenticated(lo: Loopback) -> None:
    _known(lo)
    one = threading.Semaphore(1)
    first = open_transport(lo.target(), host_name="dev", limiter=one)
    second = open_transport(lo.target(), host_name="dev", limiter=one)  # would block if held
    try:
        assert one.acquire(blocking=False)
        one.release()
    finally:
        first.close()
        second.close()


def test_server_alive_interval_sets_keepalive(lo: Loopback) -> None:
    _known(lo)
    transport = open_transport(lo.target(server_alive_interval=7.0), host_name="dev")
    try:
        assert transport.packetizer._Packetizer__keepalive_interval == 7  # type: ignore[attr-defined]
        # paramiko looks for a keepalive due only when its reader's recv() times out.
        assert transport.sock.gettimeout() == 7  # type: ignore[union-attr]
    finally:
        transport.close()


def test_the_reader_waits_long_and_a_close_still_ends_it_at_once(lo: Loopback) -> None:
    """paramiko's reader thread sits in recv() for up to ACTIVE_CHECK_S between packets (not
    0.1 s: fewer wake-ups per idle host); close() wakes it, so the thread, and the connection
    the server sees, end at once."""
    _known(lo)
    transport = open_transport(lo.target(), host_name="dev")
    assert transport.sock.gettimeout() == ACTIVE_CHECK_S  # type: ignore[union-attr]
    assert _run(transport, "echo up") == b"up\n"
    time.sleep(0.3)  # the reader is back in recv()
    started = time.monotonic()
    transport.close()
    transport.join(ACTIVE_CHECK_S)
    assert not transport.is_alive()
    assert time.monotonic() - started < 1.0


def test_aes_gcm_is_preferred_and_the_others_stay(lo: Loopback) -> None:
    """An AEAD cipher when the server has one (its MAC is checked in OpenSSL, not byte by
    byte in Python); paramiko's other ciphers stay offered for servers without GCM."""
    _known(lo)
    transport = open_transport(lo.target(), host_name="dev")
    try:
        assert transport.local_cipher == transport.remote_cipher == "aes128-gcm@openssh.com"
        offered = transport.get_security_options().ciphers
        assert offered[:2] == ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
        assert set(offered) == set(paramiko.Transport._preferred_ciphers)  # type: ignore[attr-defined]
        assert _run(transport, "echo gcm") == b"gcm\n"
    finally:
        transport.close()
