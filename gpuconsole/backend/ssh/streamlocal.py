"""OpenSSH's ``direct-streamlocal@openssh.com`` channel for paramiko (and a timed channel open).

``ssh -L local.sock:/var/run/docker.sock`` asks the server for a ``direct-streamlocal@openssh.com``
channel: a byte stream to a unix socket on the server. It is not a session, so sshd's MaxSessions
does not count it, and the server needs no docker CLI. paramiko has no method for it, so
:func:`open_channel` is a copy of ``paramiko.Transport.open_channel`` (same lock, same channel
table, same event wait) that appends the channel type's own fields verbatim, and tells a timeout
(:class:`ChannelOpenTimeout`) from a refusal (``paramiko.ChannelException``).

It touches paramiko internals (``Transport.lock``, ``_channels``, ``channel_events``,
``channels_seen``, ``_next_channel``, ``_sanitize_*_size``, ``_send_user_message``,
``Channel._set_transport`` / ``_set_window``), so it is pinned: :data:`TESTED_PARAMIKO_MINORS`
lists the paramiko versions it was checked against, and a test fails on any other one.

OpenSSH answers a forbidden forward (``AllowStreamLocalForwarding no``) like a failed connect, so
:func:`open_streamlocal` tells them apart by asking whether the socket exists (one short session);
a refusal raises :class:`StreamLocalRefused`, at once, never a hang.

One difference from paramiko: when the open times out, paramiko leaves the channel registered and
a late confirmation opens it for nobody (the server keeps it until the connection ends); here a
late confirmation closes it.
"""

from __future__ import annotations

import shlex
import threading
import time
from typing import Any

import paramiko
from paramiko.common import (
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_FAILED_CONNECT_FAILED,
    cMSG_CHANNEL_OPEN,
)
from paramiko.message import Message

from gpuconsole.backend.errors import GpuconsoleError

#: paramiko minor versions whose ``Transport.open_channel`` this module copies. When the installed
#: paramiko is not listed, re-read paramiko/transport.py (open_channel, _parse_channel_open_success
#: and _parse_channel_open_failure) and compare before adding it here.
TESTED_PARAMIKO_MINORS: tuple[str, ...] = ("5.1",)

STREAMLOCAL_KIND = "direct-streamlocal@openssh.com"


class ChannelOpenTimeout(paramiko.SSHException, TimeoutError):
    """The server did not answer a channel open in time (a stalled or dead peer).

    Both a ``paramiko.SSHException`` and a ``TimeoutError`` (so ``except OSError`` sees it, as it
    would a socket connect timeout).
    """


class StreamLocalRefused(paramiko.ChannelException, GpuconsoleError):
    """The SSH server will not connect to the unix socket although it exists: it forbids
    forwarding to unix sockets (``AllowStreamLocalForwarding no``, ``no-port-forwarding`` on the
    key) — or, less likely, the socket is stale. Use ``docker system dial-stdio`` sessions."""

    def __init__(self, path: str, code: int, text: str) -> None:
        super().__init__(code, text)
        self.path = path

    def __str__(self) -> str:
        return (
            f"the SSH server will not forward to the unix socket {self.path}: it probably sets "
            "AllowStreamLocalForwarding no (or nothing accepts connections on that socket)"
        )


class _CloseWhenAnswered(threading.Event):
    """Put in ``Transport.channel_events`` for an open we gave up on: paramiko ``set()``s it when
    the answer finally comes; a confirmation then means an open channel nobody holds, so close it
    (in a thread of its own: ``set()`` runs on the transport's thread, under its lock)."""

    def __init__(self, chan: paramiko.Channel) -> None:
        super().__init__()
        self._chan = chan

    def set(self) -> None:
        super().set()
        chan = self._chan
        if chan.active and not chan.closed:
            threading.Thread(target=chan.close, name="paramiko-late-close", daemon=True).start()


def paramiko_minor(version: str | None = None) -> str:
    """``"5.1"`` for paramiko 5.1.0 (the installed one by default)."""
    parts = (version or paramiko.__version__).split(".")
    return ".".join(parts[:2])


def open_channel(
    transport: paramiko.Transport,
    kind: str,
    fields: bytes = b"",
    *,
    timeout: float = 5.0,
    window_size: int | None = None,
    max_packet_size: int | None = None,
) -> paramiko.Channel:
    """Open a channel of any ``kind`` whose type-specific fields are ``fields`` (already packed).

    Raises ``paramiko.ChannelException`` when the server refuses (``.code`` says why),
    :class:`ChannelOpenTimeout` when it does not answer within ``timeout`` seconds, and
    ``paramiko.SSHException`` (or the transport's own error) when the connection is gone.
    """
    if not transport.is_active():
        raise paramiko.SSHException("SSH session not active")
    t: Any = transport  # the private parts below are not in the type stubs
    with t.lock:
        window_size = t._sanitize_window_size(window_size)
        max_packet_size = t._sanitize_packet_size(max_packet_size)
        chanid = t._next_channel()
        m = Message()
        m.add_byte(cMSG_CHANNEL_OPEN)
        m.add_string(kind)
        m.add_int(chanid)
        m.add_int(window_size)
        m.add_int(max_packet_size)
        m.add_bytes(fields)
        chan = paramiko.Channel(chanid)
        t._channels.put(chanid, chan)
        t.channel_events[chanid] = event = threading.Event()
        t.channels_seen[chanid] = True
        c: Any = chan
        c._set_transport(t)
        c._set_window(window_size, max_packet_size)
    t._send_user_message(m)
    deadline = time.monotonic() + timeout
    while True:
        event.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        if not transport.is_active():
            e = transport.get_exception()
            if e is None:
                e = paramiko.SSHException("Unable to open channel.")
            raise e
        if event.is_set():
            break
        if time.monotonic() >= deadline:
            with t.lock:
                if not event.is_set():
                    if chanid in t.channel_events:
                        t.channel_events[chanid] = _CloseWhenAnswered(chan)
                    raise ChannelOpenTimeout(
                        f"no answer to a {kind} channel open within {timeout:g} s"
                    )
            break
    opened: paramiko.Channel | None = t._channels.get(chanid)
    if opened is not None:
        return opened
    e = transport.get_exception()
    if e is None:
        e = paramiko.SSHException("Unable to open channel.")
    raise e


def streamlocal_fields(socket_path: str) -> bytes:
    """The type-specific fields of a ``direct-streamlocal@openssh.com`` open (OpenSSH PROTOCOL
    2.4): string socket path, string reserved, uint32 reserved."""
    m = Message()
    m.add_string(socket_path)
    m.add_string("")
    m.add_int(0)
    return m.asbytes()


def open_streamlocal(
    transport: paramiko.Transport, socket_path: str, timeout: float = 5.0
) -> paramiko.Channel:
    """A channel connected to the unix socket ``socket_path`` on the server.

    Raises :class:`StreamLocalRefused` when the server forbids it, ``paramiko.ChannelException``
    when it could not connect (no such socket, or one the user may not write: code 2),
    :class:`ChannelOpenTimeout` after ``timeout`` seconds without an answer, and
    ``paramiko.SSHException`` when the connection is gone.

    OpenSSH (9.2 at least) answers a forbidden forward exactly like a failed connect (code 2,
    "open failed"; only its log says "refused streamlocal port forward"). So after a code-2
    failure this asks the server, in one short session (``[ -S PATH ] && [ -w PATH ]``, shell
    builtins), whether the socket exists and is writable: if so, the server refused.
    """
    deadline = time.monotonic() + timeout
    try:
        return open_channel(
            transport, STREAMLOCAL_KIND, streamlocal_fields(socket_path), timeout=timeout
        )
    except paramiko.ChannelException as e:
        if e.code == OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED or (
            e.code == OPEN_FAILED_CONNECT_FAILED
            and _socket_is_usable(transport, socket_path, deadline)
        ):
            raise StreamLocalRefused(socket_path, e.code, e.text) from e
        raise


def _socket_is_usable(transport: paramiko.Transport, path: str, deadline: float) -> bool:
    """True when the server says ``path`` is a unix socket the user may write to."""

    def remaining() -> float:
        return max(0.2, deadline - time.monotonic())

    try:
        chan = open_channel(transport, "session", timeout=remaining())
    except Exception:
        return False
    timer = threading.Timer(remaining(), chan.close)  # exec_command waits without a timeout
    timer.daemon = True
    timer.start()
    try:
        q = shlex.quote(path)
        chan.exec_command(f"[ -S {q} ] && [ -w {q} ]")
        return chan.status_event.wait(remaining()) and chan.exit_status == 0
    except Exception:
        return False
    finally:
        timer.cancel()
        chan.close()


__all__ = [
    "STREAMLOCAL_KIND",
    "TESTED_PARAMIKO_MINORS",
    "ChannelOpenTimeout",
    "StreamLocalRefused",
    "open_channel",
    "open_streamlocal",
    "paramiko_minor",
    "streamlocal_fields",
]
