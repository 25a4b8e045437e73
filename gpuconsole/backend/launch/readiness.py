"""Is the launched server answering yet? One cheap probe per variant, polled by the launcher.

Jupyter: ``GET /api/status`` with the token in an Authorization header (not in the URL, so the
server's access log never records it) answers 200 once the server is up. SSH: the server's
``SSH-2.0`` banner — a bare TCP connect is not enough, because Docker's port proxy accepts
connections before anything listens in the container.
"""

from __future__ import annotations

import http.client
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.machine import Connection, Machine

ANY_ADDRESSES = ("0.0.0.0", "::", "")


def reach_address(bind: str) -> str:
    """Where this machine reaches a port published on ``bind``."""
    return "127.0.0.1" if bind in ANY_ADDRESSES else bind


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def jupyter_url(bind: str, port: int, token: str) -> str:
    """The URL a browser opens: the token logs the browser in once, then a cookie does."""
    return f"http://{_url_host(reach_address(bind))}:{port}/?token={token}"


def ssh_command(
    bind: str, port: int, user: str, identity: str | None = None, jump: str | None = None
) -> str:
    """The command that reaches a launched sshd; ``jump``: through a remote host's own sshd
    (the port is on that host's loopback)."""
    key = f" -i {identity}" if identity else ""
    via = f" -J {jump}" if jump else ""
    return f"ssh{via} -p {port}{key} {user}@{reach_address(bind)}"


def connect(machine: Machine | None, address: str, port: int, timeout: float) -> Connection:
    """A connection to ``address:port`` as the engine's machine sees it (its own loopback)."""
    if machine is None:
        return socket.create_connection((address, port), timeout=timeout)
    return machine.connect_tcp(address, port, timeout)


class _MachineHTTPConnection(http.client.HTTPConnection):
    """http.client over a Machine's connection (an SSH channel for a remote host)."""

    def __init__(self, machine: Machine | None, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._machine = machine

    def connect(self) -> None:
        self.sock = connect(self._machine, self.host, self.port or 80, float(self.timeout or 5))


def jupyter_status(
    address: str, port: int, token: str, timeout: float = 2.0, machine: Machine | None = None
) -> int | None:
    """HTTP status of /api/status with the token, or None when nothing answers yet."""
    conn = _MachineHTTPConnection(machine, address, port, timeout)
    try:
        conn.request("GET", "/api/status", headers={"Authorization": f"token {token}"})
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def ssh_banner(
    address: str, port: int, timeout: float = 2.0, machine: Machine | None = None
) -> str | None:
    """The SSH server's identification line, or None when no SSH server answers yet."""
    try:
        sock = connect(machine, address, port, timeout)
    except OSError:
        return None
    try:
        sock.settimeout(timeout)
        data = sock.recv(256)
    except OSError:
        return None
    finally:
        sock.close()
    line = data.split(b"\r\n", 1)[0].decode("ascii", "replace")
    return line if line.startswith("SSH-") else None
