"""Is a host port free, and which free one to publish on.

A port counts as taken when a container of the engine already publishes it on that address (or
on every address), or — for an engine on this machine — when binding it here fails. The bind test
uses SO_REUSEADDR like Docker's proxy does, so a port in TIME_WAIT is not wrongly refused.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable, Mapping

_ANY = ("0.0.0.0", "::", "")


def can_bind(address: str, port: int) -> bool:
    """True when ``address:port`` can be listened on here right now."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address or "0.0.0.0", port))
        except OSError:
            return False
    return True


def published_by(bind: str, port: int, published: Mapping[tuple[str, int], str]) -> str | None:
    """The container publishing ``port`` on ``bind`` (or on all addresses), if any."""
    for (ip, p), owner in published.items():
        if p != port:
            continue
        if ip in _ANY or bind in _ANY or ip == bind:
            return owner
    return None


def port_problem(
    bind: str, port: int, published: Mapping[tuple[str, int], str], local: bool
) -> str | None:
    """Why ``port`` cannot be used on ``bind``, or None when it is free."""
    owner = published_by(bind, port, published)
    if owner is not None:
        return f"{bind}:{port} is already published by container {owner!r}"
    if local and not can_bind(bind, port):
        return f"{bind}:{port} is in use by another program on this host"
    return None


def pick_free_port(
    bind: str,
    published: Mapping[tuple[str, int], str],
    local: bool,
    preferred: Iterable[int] = (),
) -> int | None:
    """The first free port of ``preferred``, else one the OS hands out; None when unknowable.

    For a remote engine only the engine's own publications are known, so ``preferred`` ports
    not published there are taken on trust (the engine will refuse a clash at start).
    """
    for port in preferred:
        if port_problem(bind, port, published, local) is None:
            return port
    if not local:
        return None
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    for _ in range(20):
        with socket.socket(family, socket.SOCK_STREAM) as sock, contextlib.suppress(OSError):
            sock.bind((bind or "0.0.0.0", 0))
            port = int(sock.getsockname()[1])
            if published_by(bind, port, published) is None:
                return port
    return None


def valid_bind_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
