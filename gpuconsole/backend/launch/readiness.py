"""Is the launched server answering yet? One cheap probe per variant, polled by the launcher.

Jupyter: ``GET /api/status`` with the token in an Authorization header (not in the URL, so the
server's access log never records it) answers 200 once the server is up. SSH: the server's
``SSH-2.0`` banner — a bare TCP connect is not enough, because Docker's port proxy accepts
connections before anything listens in the container.
"""

from __future__ import annotations

import http.client
import socket

ANY_ADDRESSES = ("0.0.0.0", "::", "")


def reach_address(bind: str) -> str:
    """Where this machine reaches a port published on ``bind``."""
    return "127.0.0.1" if bind in ANY_ADDRESSES else bind


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def jupyter_url(bind: str, port: int, token: str) -> str:
    """The URL a browser opens: the token logs the browser in once, then a cookie does."""
    return f"http://{_url_host(reach_address(bind))}:{port}/?token={token}"


def ssh_command(bind: str, port: int, user: str, identity: str | None = None) -> str:
    key = f" -i {identity}" if identity else ""
    return f"ssh -p {port}{key} {user}@{reach_address(bind)}"


def jupyter_status(address: str, port: int, token: str, timeout: float = 2.0) -> int | None:
    """HTTP status of /api/status with the token, or None when nothing answers yet."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", "/api/status", headers={"Authorization": f"token {token}"})
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def ssh_banner(address: str, port: int, timeout: float = 2.0) -> str | None:
    """The SSH server's identification line, or None when no SSH server answers yet."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = sock.recv(256)
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0].decode("ascii", "replace")
    return line if line.startswith("SSH-") else None
