"""The engine's liveness check (GET /_ping written by hand on a connection kept for it), against
the real dockerd, locally and over the real loopback sshd.

It replaced docker-py's ping to cost ~1/10 of the CPU; these pin the guarantees it must keep:
it answers on one kept connection (over SSH a stream-local channel on the host's transport: no
login, no session per check), a frozen engine fails it within its timeout and a close wakes it at
once, a connection that went away is replaced, and nothing stays open after close.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Any

import pytest

from gpuconsole.backend.docker import raw_ping
from gpuconsole.backend.errors import HostUnreachable

from support import host_at, ssh_env

WHERE = ["local", "ssh"]


def open_host(where: str, request: pytest.FixtureRequest, url: str | None = None, **kw: Any) -> Any:
    """The host as the console builds it: the test engine (or ``url``'s) here, or over SSH."""
    if where == "local":
        return host_at(url, **kw)
    from sshfixtures import loop_host

    request.getfixturevalue("ssh_home")
    if url is None:
        return loop_host(gpu=False, **kw)
    from gpuconsole.backend.hosts.open import ssh_host
    from gpuconsole.backend.hosts.spec import HostSpec, SshOptions

    env = ssh_env()
    spec = HostSpec(
        "loop",
        ssh=f"root@127.0.0.1:{env['GPUCONSOLE_TEST_SSH_PORT']}",
        identity_file=env["GPUCONSOLE_TEST_SSH_KEY"],
        docker_socket=url.split("://", 1)[1],
    )
    fast = SshOptions(probe_interval=1.0, probe_timeout=1.0, down_after=2)
    return ssh_host(spec, fast, gpu=False, **kw)


def is_closed(conn: Any) -> bool:
    if isinstance(conn, socket.socket):
        return conn.fileno() == -1
    return bool(conn.closed)


@pytest.mark.parametrize("where", WHERE)
def test_the_check_answers_on_one_kept_connection_without_docker_py(
    where: str, request: pytest.FixtureRequest
) -> None:
    host = open_host(where, request)
    engine = host.engine
    try:
        api = engine.api()
        asked: list[str] = []
        real_request = api.request

        def spy(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            asked.append(url)
            return real_request(method, url, *args, **kwargs)

        api.request = spy
        if where == "ssh":
            machine = host.machine
            before = (machine.connects, machine.sessions_opened)
        for _ in range(20):
            engine.ping()
        ping = engine.raw_ping
        assert (ping.checks, ping.opened) == (20, 1)
        assert not asked, "the check went through docker-py"
        conn = ping.connection
        if where == "ssh":
            # A channel on the host's one transport, not a session: no login, no session.
            assert conn.get_transport() is machine.transport()
            assert (machine.connects, machine.sessions_opened) == before
        else:
            assert isinstance(conn, socket.socket) and conn.family == socket.AF_UNIX
    finally:
        host.close()
    assert ping.connection is None and is_closed(conn)


@pytest.mark.parametrize("where", WHERE)
def test_a_connection_that_went_away_is_replaced(
    where: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = open_host(where, request)
    engine = host.engine
    ping = engine.raw_ping
    try:
        engine.ping()
        # Closed while idle (the engine or sshd closed it): seen before writing, replaced.
        first = ping.connection
        first.close()
        engine.ping()
        assert ping.opened == 2 and ping.connection is not first
        # Closed just as the question goes out (nothing saw it go): retried once on a new one.
        second = ping.connection
        if isinstance(second, socket.socket):
            second.shutdown(socket.SHUT_RDWR)
        else:
            second.close()
        monkeypatch.setattr(raw_ping, "_dropped", lambda conn: False)
        engine.ping()
        assert ping.opened == 3 and ping.checks == 3
        assert is_closed(first) and is_closed(second)
    finally:
        host.close()


def dockerd_pid(engine: Any) -> int:
    return int((engine.root / "pid").read_text().strip())


def test_a_frozen_engine_times_out_the_check_within_its_deadline(
    private_engine: Any, request: pytest.FixtureRequest
) -> None:
    """SIGSTOPped dockerd: the check raises 'did not answer' after its timeout (not sooner,
    not later), locally and over SSH; the connection is not reused after; a close during a
    hung check ends it at once and leaves nothing open; SIGCONT and it answers again."""
    hosts = {where: open_host(where, request, private_engine.url, timeout=2) for where in WHERE}
    pid = dockerd_pid(private_engine)
    try:
        for host in hosts.values():
            host.engine.ping()
        os.kill(pid, signal.SIGSTOP)
        try:
            for where, host in hosts.items():
                ping = host.engine.raw_ping
                started = time.monotonic()
                with pytest.raises(HostUnreachable) as failed:
                    host.engine.ping()
                took = time.monotonic() - started
                assert failed.value.timed_out, (where, failed.value)
                assert 1.9 <= took <= 3.5, (where, took)
                assert ping.connection is None, where  # a late answer must not be read later

            # Closing while a check hangs (a long timeout) ends it at once.
            for where, host in hosts.items():
                ping = host.engine.raw_ping
                ping.timeout = 30.0
                errors: list[BaseException] = []

                def hang(ping: Any = ping, errors: list[BaseException] = errors) -> None:
                    try:
                        ping.check()
                    except BaseException as exc:
                        errors.append(exc)

                thread = threading.Thread(target=hang, daemon=True)
                thread.start()
                time.sleep(0.5)
                conn = ping.connection
                assert conn is not None, where
                started = time.monotonic()
                host.engine.close()
                thread.join(5)
                assert not thread.is_alive(), f"{where}: the close did not end the check"
                assert time.monotonic() - started < 2, where
                assert errors and not isinstance(errors[0], TimeoutError), (where, errors)
                assert ping.connection is None and is_closed(conn), where
                ping.timeout = 2.0
        finally:
            os.kill(pid, signal.SIGCONT)
        for host in hosts.values():
            host.engine.ping()
            assert host.engine.raw_ping.connection is not None
    finally:
        for host in hosts.values():
            host.close()


def test_answers_are_read_whole_however_they_are_framed() -> None:
    """dockerd says Content-Length; a chunked answer or one that closes is read right too, and
    an answer that is not HTTP is an error, not a hang."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
    sized = head + b"Content-Length: 2\r\n\r\nOK"
    assert raw_ping._complete(sized[:-1]) is None
    assert raw_ping._complete(sized) == (200, "OK", b"OK", True)
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n0\r\n\r\n"
    assert raw_ping._complete(chunked[:-5]) is None
    assert raw_ping._complete(chunked) == (200, "OK", b"OK", True)
    closing = head + b"Connection: close\r\nContent-Length: 2\r\n\r\nOK"
    assert raw_ping._complete(closing) == (200, "OK", b"OK", False)
    failed = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom"
    assert raw_ping._complete(failed) == (500, "Internal Server Error", b"boom", True)
    with pytest.raises(ConnectionError):
        raw_ping._complete(b"SSH-2.0-OpenSSH\r\n\r\n")
