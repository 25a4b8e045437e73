"""direct-streamlocal@openssh.com channels through a real sshd to the real test Docker engine."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import paramiko
import pytest

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.ssh.streamlocal import (
    TESTED_PARAMIKO_MINORS,
    ChannelOpenTimeout,
    StreamLocalRefused,
    open_streamlocal,
    paramiko_minor,
)

if TYPE_CHECKING:  # the fixtures' types (conftest is not imported at run time)
    from sshfixtures import PrivateSshd, SshEnv


def http(chan: paramiko.Channel, path: str) -> tuple[int, bytes]:
    chan.settimeout(10)
    chan.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
    data = b""
    while chunk := chan.recv(65536):
        data += chunk
    chan.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_paramiko_minor_is_one_streamlocal_was_checked_against() -> None:
    minor = paramiko_minor()
    assert minor in TESTED_PARAMIKO_MINORS, (
        f"paramiko {paramiko.__version__} is installed, but gpuconsole/backend/ssh/streamlocal.py "
        f"copies Transport.open_channel of paramiko {', '.join(TESTED_PARAMIKO_MINORS)}. Re-read "
        "paramiko/transport.py (open_channel, _parse_channel_open_success, "
        "_parse_channel_open_failure, _next_channel) and compare with streamlocal.open_channel; "
        f"then add {minor!r} to TESTED_PARAMIKO_MINORS."
    )
    assert paramiko_minor("5.1.0") == "5.1"


def test_the_paramiko_internals_it_uses_exist(ssh_transport: paramiko.Transport) -> None:
    for name in (
        "lock",
        "_channels",
        "channel_events",
        "channels_seen",
        "_next_channel",
        "_sanitize_window_size",
        "_sanitize_packet_size",
        "_send_user_message",
    ):
        assert hasattr(ssh_transport, name), name
    chan = paramiko.Channel(0)
    assert hasattr(chan, "_set_transport")
    assert hasattr(chan, "_set_window")


def test_ping_the_docker_engine_over_the_channel(
    ssh_env: SshEnv, ssh_transport: paramiko.Transport
) -> None:
    chan = open_streamlocal(ssh_transport, ssh_env.docker_socket)
    status, body = http(chan, "/_ping")
    assert (status, body) == (200, b"OK")


def test_24_parallel_channels_no_errors(ssh_env: SshEnv, ssh_transport: paramiko.Transport) -> None:
    # Forwarded channels are not sessions: sshd's MaxSessions (10) does not apply.
    barrier = threading.Barrier(24)
    errors: list[BaseException] = []
    versions: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(10)
            chan = open_streamlocal(ssh_transport, ssh_env.docker_socket)
            status, body = http(chan, "/version")
            assert status == 200, body
            with lock:
                versions.append(json.loads(body)["ApiVersion"])
        except BaseException as e:
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(24)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert errors == []
    assert len(versions) == 24 and len(set(versions)) == 1


def test_a_missing_socket_is_a_connect_failure_not_a_refusal(
    ssh_transport: paramiko.Transport,
) -> None:
    with pytest.raises(paramiko.ChannelException) as info:
        open_streamlocal(ssh_transport, "/nonexistent/docker.sock")
    assert not isinstance(info.value, StreamLocalRefused)
    assert info.value.code == 2  # OPEN_CONNECT_FAILED


def test_a_server_that_forbids_it_refuses_quickly(
    ssh_env: SshEnv, private_sshd: Callable[..., PrivateSshd]
) -> None:
    sshd = private_sshd("AllowStreamLocalForwarding no")
    t = ssh_env.connect(sshd.port)
    try:
        start = time.monotonic()
        with pytest.raises(StreamLocalRefused) as info:
            open_streamlocal(t, ssh_env.docker_socket, timeout=5)
        assert time.monotonic() - start < 1.0
        err = info.value
        assert isinstance(err, GpuconsoleError)
        assert isinstance(err, paramiko.ChannelException)
        assert ssh_env.docker_socket in str(err)
        assert "AllowStreamLocalForwarding" in str(err)
        assert t.is_active()  # the connection itself is fine
    finally:
        t.close()


def test_a_stalled_server_times_out_and_a_late_answer_is_closed(
    ssh_env: SshEnv, private_sshd: Callable[..., PrivateSshd]
) -> None:
    sshd = private_sshd()
    t = ssh_env.connect(sshd.port)
    try:
        sshd.stop()
        start = time.monotonic()
        with pytest.raises(ChannelOpenTimeout) as info:
            open_streamlocal(t, ssh_env.docker_socket, timeout=0.5)
        elapsed = time.monotonic() - start
        assert 0.45 <= elapsed < 1.0
        assert isinstance(info.value, TimeoutError)
        sshd.cont()
        # The server now answers the abandoned open: that channel must not stay open.
        channels: Any = t._channels  # type: ignore[attr-defined]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(not c.closed for c in channels.values()):
            time.sleep(0.05)
        assert [c for c in channels.values() if not c.closed] == []
        status, body = http(open_streamlocal(t, ssh_env.docker_socket), "/_ping")
        assert (status, body) == (200, b"OK")
    finally:
        sshd.cont()
        t.close()
