"""Local ports that reach a remote host's loopback through its one SSH connection.

A launched Jupyter or sshd publishes on the remote 127.0.0.1 (never on every interface); the
console listens on a free local 127.0.0.1 port and carries each accepted connection over the
host's Machine (``connect_tcp``: a direct-tcpip channel, not a new login). The listening socket
outlives SSH reconnects, so the local port — and the URL the user copied — stays the same.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.machine import Connection, Machine


def _pump(local: socket.socket, remote: Connection, stop: threading.Event) -> None:
    """Copy bytes both ways until either side closes."""
    sel = selectors.DefaultSelector()
    remote_fd = remote.fileno() if hasattr(remote, "fileno") else None
    sel.register(local, selectors.EVENT_READ, remote)
    if remote_fd is not None:
        sel.register(remote_fd, selectors.EVENT_READ, local)
    local.setblocking(True)
    remote.settimeout(None)
    try:
        while not stop.is_set():
            for key, _ in sel.select(timeout=0.5):
                source = local if key.data is remote else remote
                data = source.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        sel.close()
        with contextlib.suppress(OSError):
            local.close()
        with contextlib.suppress(Exception):
            remote.close()


class Tunnel:
    """127.0.0.1:``local_port`` here → ``remote_host:remote_port`` as the machine sees it."""

    def __init__(
        self,
        machine: Machine,
        remote_port: int,
        remote_host: str = "127.0.0.1",
        local_port: int = 0,
    ) -> None:
        self.machine = machine
        self.remote_host = remote_host
        self.remote_port = remote_port
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind(("127.0.0.1", local_port))
        except OSError:
            if not local_port:
                raise
            # The remembered port was taken meanwhile: any free one beats no tunnel.
            self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.5)
        self.local_port: int = self._listener.getsockname()[1]
        #: How many connections were carried (for tests and the details screen).
        self.connections = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(
            target=self._accept, name=f"tunnel:{machine.name}:{remote_port}", daemon=True
        )
        self._thread.start()

    @property
    def open(self) -> bool:
        return not self._stop.is_set()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                local, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._carry, args=(local,), daemon=True).start()

    def _carry(self, local: socket.socket) -> None:
        try:
            remote = self.machine.connect_tcp(self.remote_host, self.remote_port, 10.0)
        except Exception as exc:  # the host is down, or nothing listens there any more
            self.last_error = str(exc) or type(exc).__name__
            with contextlib.suppress(OSError):
                local.close()
            return
        self.connections += 1
        _pump(local, remote, self._stop)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()


class Tunnels:
    """One host's tunnels, keyed (e.g. by container id and port); a key keeps its local port."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self._lock = threading.Lock()
        self._open: dict[str, Tunnel] = {}
        self._ports: dict[str, int] = {}

    def open(
        self, key: str, remote_port: int, remote_host: str = "127.0.0.1", local_port: int = 0
    ) -> Tunnel:
        """The tunnel for ``key``, opened if needed, on the same local port as before."""
        with self._lock:
            tunnel = self._open.get(key)
            if tunnel is not None and tunnel.open and tunnel.remote_port == remote_port:
                return tunnel
            if tunnel is not None:
                tunnel.close()
            port = local_port or self._ports.get(key, 0)
            tunnel = Tunnel(self.machine, remote_port, remote_host, port)
            self._open[key] = tunnel
            self._ports[key] = tunnel.local_port
            return tunnel

    def get(self, key: str) -> Tunnel | None:
        with self._lock:
            return self._open.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._open)

    def close_key(self, key: str) -> None:
        with self._lock:
            tunnel = self._open.pop(key, None)
        if tunnel is not None:
            tunnel.close()

    def close(self) -> None:
        with self._lock:
            tunnels, self._open = list(self._open.values()), {}
        for tunnel in tunnels:
            tunnel.close()
