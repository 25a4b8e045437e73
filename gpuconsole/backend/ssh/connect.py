"""One authenticated paramiko Transport per target: TCP, ProxyCommand or ProxyJump; host key
checked against known_hosts; public-key authentication by agent and identity files.

Every failure is a :class:`MachineUnreachable` (or one of its subclasses: the host-key errors of
:mod:`.trust` and :class:`SshAuthFailed`) whose ``str()`` tells the user what to do.

ProxyJump: the first jump host is opened with its own configuration (its own ProxyJump or
ProxyCommand included, as ``ssh -J`` does); each further hop and the target are reached through a
``direct-tcpip`` channel of the hop before, used as the ``sock`` of the next Transport. Every
hop's host key is verified. The Transport returned keeps the Transport it was tunnelled through:
its ``close()``, or the end of its thread for any reason, also closes that one (and so the whole
chain); :func:`jump_transports` lists them.

paramiko is imported when a connection is opened, not when this module is imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import logging
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.hosts.machine import MachineUnreachable
from gpuconsole.backend.ssh.config import SshConfigError, SshTarget, resolve_target
from gpuconsole.backend.ssh.trust import (
    DEFAULT_KNOWN_HOSTS,
    GLOBAL_KNOWN_HOSTS_FILES,
    HostKeyChanged,
    HostKeyRevoked,
    HostKeyUnknown,
    Trust,
    check_host_key,
    fingerprint_sha256,
    known_key_types,
    remember_host_key,
)

if TYPE_CHECKING:
    import paramiko

# sshd's MaxStartups (default 10:30:100) starts dropping new connections while 10 are still
# unauthenticated: at most this many handshakes run at once (the TCP connect through auth).
HANDSHAKES = threading.BoundedSemaphore(8)
MAX_HOPS = 8
# check-then-append of known_hosts must not interleave between threads (duplicate lines).
_REMEMBER_LOCK = threading.Lock()

Resolver = Callable[..., SshTarget]


class SshAuthFailed(MachineUnreachable):
    """No key got in. ``tried`` names the keys offered, ``notes`` the ones that could not be."""

    def __init__(
        self,
        host: str,
        target: SshTarget,
        tried: list[str],
        notes: list[str],
        detail: str = "",
    ) -> None:
        self.target = target
        self.tried = tuple(tried)
        self.notes = tuple(notes)
        parts = [f"public-key authentication as {target.user!r} failed"]
        if detail:
            parts.append(detail)
        parts.append(f"keys tried: {', '.join(tried)}" if tried else "no key could be offered")
        if notes:
            parts.append("; ".join(notes))
        files = ", ".join(target.identity_files) or "none"
        host_arg = f"[{target.hostname}]" if ":" in target.hostname else target.hostname
        hint = (
            "install your public key on the host with "
            f"`ssh-copy-id -i KEY.pub -p {target.port} {target.user}@{host_arg}`, or name the "
            "right key with IdentityFile in ~/.ssh/config (or identity_file in the gpuconsole "
            f"config); identity files looked for: {files}"
        )
        super().__init__(host, target.address, " — ".join(parts), hint)


def jump_transports(transport: paramiko.Transport) -> tuple[paramiko.Transport, ...]:
    """The Transports ``transport`` was tunnelled through, nearest first (empty when direct)."""
    chain: list[paramiko.Transport] = []
    via: paramiko.Transport | None = getattr(transport, "via", None)
    while via is not None:
        chain.append(via)
        via = getattr(via, "via", None)
    return tuple(chain)


#: Seconds paramiko's reader thread waits for a packet before it looks for a keepalive or a
#: rekey due (``Transport._active_check_timeout``); a shorter ServerAliveInterval shortens it.
ACTIVE_CHECK_S = 10.0
_GCM_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


@functools.cache
def _transport_class() -> type[paramiko.Transport]:
    import paramiko

    # paramiko logs every failed handshake with a traceback at ERROR; with no handler anywhere
    # Python would print that on stderr (over a full-screen UI). Applications that configure
    # logging still get the records.
    logging.getLogger("paramiko").addHandler(logging.NullHandler())

    class ChainedTransport(paramiko.Transport):
        """A Transport that closes the Transport it is tunnelled through when it ends."""

        via: paramiko.Transport | None = None
        _closing = False
        #: paramiko's reader wakes every 0.1 s (its default) to look for a local close, a
        #: keepalive or a rekey due: ten wake-ups a second per host for nothing (0.3 % of a
        #: core per host, measured with 10 hosts). A local close wakes it at once here
        #: (``stop_thread``), a keepalive due sooner shortens it (``_hop``) and a rekey of ours
        #: can wait that long (paramiko asks at 512 MiB sent): every ACTIVE_CHECK_S.
        _active_check_timeout = ACTIVE_CHECK_S
        #: AES-GCM first (then paramiko's own order, which a server without GCM falls back
        #: to): an AEAD checks each packet in one call into OpenSSL, where the CTR ciphers'
        #: HMAC is compared byte by byte in Python — 27 against 46 us a packet read here.
        _preferred_ciphers = (
            *_GCM_CIPHERS,
            *(
                c
                for c in paramiko.Transport._preferred_ciphers  # type: ignore[attr-defined]
                if c not in _GCM_CIPHERS
            ),
        )

        def stop_thread(self) -> None:
            # paramiko closes the socket here, but its reader may sit in recv() on it for up
            # to the active check: closing a descriptor does not wake a recv() on it (the
            # kernel keeps the connection until that returns), so the thread and the
            # connection the server sees would outlive close() by that much. A shutdown ends
            # that recv() at once (EOF). Marked inactive first, so that the reader takes the
            # EOF for this close, not for a lost connection.
            self.active = False
            sock = self.sock
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            super().stop_thread()

        def _close_via(self) -> None:
            via, self.via = self.via, None
            if via is not None:
                via.close()

        def close(self) -> None:
            # Closing our channel (the sock) still sends through ``via``: close it after.
            self._closing = True
            try:
                super().close()
            finally:
                self._close_via()

        def run(self) -> None:
            try:
                super().run()
            finally:
                if not self._closing:  # ended by itself: the peer or a hop went away
                    self._close_via()

    return ChainedTransport


@dataclasses.dataclass(frozen=True, slots=True)
class _Context:
    host_name: str
    timeout: float
    accept_new_host_key: bool
    on_unknown_key: Callable[[HostKeyUnknown], bool] | None
    limiter: threading.Semaphore
    resolve: Resolver


def open_transport(
    target: SshTarget,
    *,
    host_name: str,
    timeout: float = 10.0,
    accept_new_host_key: bool = False,
    on_unknown_key: Callable[[HostKeyUnknown], bool] | None = None,
    limiter: threading.Semaphore | None = None,
    resolve: Resolver = resolve_target,
) -> paramiko.Transport:
    """Open, verify and authenticate one SSH connection to ``target`` (``host_name``: the host's
    name in the console, for messages).

    ``timeout`` bounds each hop from its TCP connect to the end of authentication (not the wait
    for ``limiter``, nor the time ``on_unknown_key`` takes to answer). An unknown host key is
    accepted (and appended to the target's first UserKnownHostsFile) when ``accept_new_host_key``
    or ``on_unknown_key(err)`` says so; a changed or revoked key never is. ``limiter`` (default
    :data:`HANDSHAKES`) is held only while a hop is unauthenticated. ``resolve`` resolves jump
    host specs (called with ``config_path=target.config_path``).
    """
    ctx = _Context(
        host_name=host_name,
        timeout=timeout,
        accept_new_host_key=accept_new_host_key,
        on_unknown_key=on_unknown_key,
        limiter=limiter if limiter is not None else HANDSHAKES,
        resolve=resolve,
    )
    return _open(target, ctx, depth=0)


def _open(target: SshTarget, ctx: _Context, depth: int) -> paramiko.Transport:
    if not target.proxy_jump:
        return _hop(target, ctx, via=None)
    if depth >= MAX_HOPS:
        raise MachineUnreachable(
            ctx.host_name,
            target.address,
            f"more than {MAX_HOPS} ProxyJump hops",
            "look for jump hosts that jump through each other in ~/.ssh/config",
        )
    specs = target.proxy_jump
    first = _resolve_jump(specs[0], target, ctx)
    with _at_jump(specs[0]):
        via = _open(first, ctx, depth + 1)
    try:
        for spec in specs[1:]:
            hop = dataclasses.replace(
                _resolve_jump(spec, target, ctx), proxy_jump=(), proxy_command=None
            )
            with _at_jump(spec):
                via = _hop(hop, ctx, via=via)
        return _hop(dataclasses.replace(target, proxy_jump=(), proxy_command=None), ctx, via=via)
    except BaseException:
        via.close()
        raise


@contextlib.contextmanager
def _at_jump(spec: str) -> Iterator[None]:
    """Say that a plain network failure happened at a jump host (the typed host-key and
    authentication errors already name the jump host's address and are kept as they are)."""
    try:
        yield
    except MachineUnreachable as exc:
        if type(exc) is not MachineUnreachable or exc.reason.startswith("jump host "):
            raise
        reason = f"jump host {spec!r}: {exc.reason}"
        raise MachineUnreachable(exc.host, exc.address, reason, exc.hint) from exc


def _resolve_jump(spec: str, target: SshTarget, ctx: _Context) -> SshTarget:
    try:
        return ctx.resolve(spec, config_path=target.config_path)
    except SshConfigError as exc:
        raise MachineUnreachable(
            ctx.host_name, target.address, f"its jump host {spec!r} cannot be resolved: {exc}"
        ) from exc


def _hop(target: SshTarget, ctx: _Context, via: paramiko.Transport | None) -> paramiko.Transport:
    """One connection (through ``via`` when given): handshake, host key, authentication."""
    with ctx.limiter:
        deadline = time.monotonic() + ctx.timeout
        sock = _open_socket(target, ctx, via, deadline)
        try:
            transport = _transport_class()(sock)
        except BaseException:
            sock.close()
            raise
        transport.via = via  # type: ignore[attr-defined]
        if target.server_alive_interval:
            # paramiko looks for a keepalive due only when its reader's recv() times out.
            transport.sock.settimeout(
                min(ACTIVE_CHECK_S, max(1, round(target.server_alive_interval)))
            )
        try:
            _handshake(transport, target, ctx, deadline)
            if _verify_host_key(transport, target, ctx):
                deadline = time.monotonic() + ctx.timeout  # a person answered: time restarts
            _authenticate(transport, target, ctx, deadline)
            _await_login(transport, target, ctx, deadline)
        except BaseException:
            transport.via = None  # type: ignore[attr-defined]  # the caller closes via
            transport.close()
            raise
    if target.server_alive_interval:
        transport.set_keepalive(max(1, round(target.server_alive_interval)))
    return transport


def _unreachable(target: SshTarget, ctx: _Context, reason: str, hint: str = "") -> Exception:
    return MachineUnreachable(ctx.host_name, target.address, reason, hint)


def _remaining(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())


def _open_socket(
    target: SshTarget, ctx: _Context, via: paramiko.Transport | None, deadline: float
) -> Any:
    import paramiko

    where = f"{target.hostname} port {target.port}"
    if via is not None:
        try:
            return via.open_channel(
                "direct-tcpip",
                (target.hostname, target.port),
                ("127.0.0.1", 0),
                timeout=_remaining(deadline),
            )
        except paramiko.ChannelException as exc:
            raise _unreachable(
                target,
                ctx,
                f"the jump host could not connect to {where} ({exc.text.lower()})",
                "check HostName/Port, and that the jump host allows TCP forwarding",
            ) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise _unreachable(
                target, ctx, f"the jump host connection failed ({exc or type(exc).__name__})"
            ) from exc
    if target.proxy_command:
        # OpenSSH runs ProxyCommand through the shell (paramiko would split it itself).
        shell = os.environ.get("SHELL") or "/bin/sh"
        line = f"{shlex.quote(shell)} -c {shlex.quote('exec ' + target.proxy_command)}"
        try:
            return paramiko.ProxyCommand(line)
        except (paramiko.ProxyCommandFailure, OSError) as exc:
            raise _unreachable(
                target, ctx, f"ProxyCommand {target.proxy_command!r} failed: {exc}"
            ) from exc
    connect_timeout = _remaining(deadline)
    if target.connect_timeout is not None:
        connect_timeout = min(connect_timeout, target.connect_timeout)
    try:
        sock = socket.create_connection((target.hostname, target.port), timeout=connect_timeout)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise _unreachable(
                target,
                ctx,
                f"name {target.hostname!r} not known",
                "check the host name (HostName in ~/.ssh/config)",
            ) from exc
        raise _unreachable(
            target, ctx, f"cannot look up {target.hostname!r}: {exc.strerror or exc}"
        ) from exc
    except ConnectionRefusedError as exc:
        raise _unreachable(
            target,
            ctx,
            "connection refused",
            f"is sshd running on {where}? (Port in ~/.ssh/config, or host:port)",
        ) from exc
    except TimeoutError as exc:
        raise _unreachable(
            target,
            ctx,
            f"timed out after {connect_timeout:g} s",
            f"is the host up, and {where} open (firewall, VPN)?",
        ) from exc
    except OSError as exc:
        reason = (exc.strerror or str(exc) or errno.errorcode.get(exc.errno or 0, "error")).lower()
        raise _unreachable(target, ctx, reason) from exc
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock


def _prefer_known_key_types(transport: paramiko.Transport, target: SshTarget) -> None:
    files = (*target.user_known_hosts_files, *GLOBAL_KNOWN_HOSTS_FILES)
    known = known_key_types(target.hostname, target.port, files)
    if not known:
        return
    options = transport.get_security_options()
    offered = list(options.key_types)
    preferred = [t for t in known if t in offered]
    if preferred:
        options.key_types = preferred + [t for t in offered if t not in preferred]


def _handshake(
    transport: paramiko.Transport, target: SshTarget, ctx: _Context, deadline: float
) -> None:
    import paramiko

    remaining = _remaining(deadline)
    transport.banner_timeout = remaining
    transport.handshake_timeout = remaining
    transport.auth_timeout = remaining
    _prefer_known_key_types(transport, target)
    done = threading.Event()
    transport.start_client(event=done)  # returns at once; the thread does the work
    while not done.wait(0.05) and time.monotonic() < deadline and transport.is_active():
        pass
    if done.is_set() and transport.is_active():
        return
    exc = transport.get_exception()
    banner = bool(getattr(transport, "remote_version", ""))
    where = f"{target.hostname} port {target.port}"
    if exc is None and not done.is_set():
        if not banner:
            raise _unreachable(
                target,
                ctx,
                f"no SSH banner within {ctx.timeout:g} s",
                f"is {where} an SSH server, and is it responsive?",
            )
        raise _unreachable(target, ctx, f"SSH key exchange not finished within {ctx.timeout:g} s")
    if isinstance(exc, paramiko.ProxyCommandFailure):
        raise _unreachable(target, ctx, f"ProxyCommand failed: {exc}") from exc
    text = str(exc) if exc is not None else "negotiation failed"
    if not banner:
        cause = exc.__context__ if exc is not None else None
        if isinstance(cause, TimeoutError) or time.monotonic() >= deadline - 0.1:
            raise _unreachable(
                target,
                ctx,
                f"no SSH banner within {ctx.timeout:g} s",
                f"is {where} an SSH server, and is it responsive?",
            ) from exc
        if "Indecipherable" in text:
            raise _unreachable(
                target, ctx, f"not an SSH server ({text})", f"check the port of {where}"
            ) from exc
        raise _unreachable(
            target,
            ctx,
            "the server closed the connection before its SSH banner",
            "sshd may be refusing connections (MaxStartups, tcp wrappers, firewall)",
        ) from exc
    if isinstance(exc, EOFError | ConnectionError) or not text:
        text = "the server closed the connection"
    raise _unreachable(target, ctx, f"SSH handshake failed: {text}") from exc


def _verify_host_key(transport: paramiko.Transport, target: SshTarget, ctx: _Context) -> bool:
    """Check the server's key; True when a person was asked (and accepted)."""
    key = transport.get_remote_server_key()
    files = (*target.user_known_hosts_files, *GLOBAL_KNOWN_HOSTS_FILES)
    verdict = check_host_key(target.hostname, target.port, key, files)
    if verdict.status is Trust.KNOWN:
        return False
    if verdict.status is Trust.CHANGED:
        raise HostKeyChanged(
            target.hostname, target.port, key, verdict, host=ctx.host_name, address=target.address
        )
    if verdict.status is Trust.REVOKED:
        raise HostKeyRevoked(
            target.hostname, target.port, key, verdict, host=ctx.host_name, address=target.address
        )
    path = (target.user_known_hosts_files or (os.path.expanduser(DEFAULT_KNOWN_HOSTS),))[0]
    err = HostKeyUnknown(
        target.hostname,
        target.port,
        key,
        path,
        host=ctx.host_name,
        address=target.address,
        verdict=verdict,
    )
    asked = False
    accepted = ctx.accept_new_host_key
    if not accepted and ctx.on_unknown_key is not None:
        asked = True
        accepted = bool(ctx.on_unknown_key(err))
    if not accepted:
        raise err
    with _REMEMBER_LOCK:
        again = check_host_key(target.hostname, target.port, key, files)
        if again.status is Trust.UNKNOWN:
            remember_host_key(target.hostname, target.port, key, path)
        elif again.status is not Trust.KNOWN:  # changed meanwhile: verify from the start
            return _verify_host_key(transport, target, ctx) or asked
    return asked


def _await_login(
    transport: paramiko.Transport, target: SshTarget, ctx: _Context, deadline: float
) -> None:
    """Wait for one answer from the logged-in server before the limiter slot is given back.

    sshd counts a connection against MaxStartups until its monitor has seen the pre-auth child
    exit, which is after the client got "auth success"; only then does it start the process that
    answers requests. One round trip (a session channel opened and closed: any answer, even a
    refusal, will do) proves the count went down. Without it, 8 handshakes at once still
    overflowed MaxStartups 10 now and then.
    """
    import paramiko

    try:
        channel = transport.open_channel("session", timeout=_remaining(deadline))
    except paramiko.ChannelException:
        return  # refused (MaxSessions 0, ...): an answer all the same
    except (paramiko.SSHException, EOFError, OSError) as exc:
        reason = (
            f"no answer after login within {ctx.timeout:g} s"
            if time.monotonic() >= deadline
            else f"the connection failed right after login ({exc or type(exc).__name__})"
        )
        raise _unreachable(target, ctx, reason) from exc
    channel.close()


# ---------------------------------------------------------------------------------------------
# Authentication


def _agent_keys(
    target: SshTarget, deadline: float, notes: list[str]
) -> tuple[Any, list[paramiko.PKey]]:
    import paramiko

    if (target.identity_agent or "").lower() == "none":
        return None, []
    path = target.identity_agent or os.environ.get("SSH_AUTH_SOCK")
    if not path or not hasattr(socket, "AF_UNIX"):
        return None, []

    class _SocketAgent(paramiko.agent.AgentSSH):
        def __init__(self, sock: socket.socket) -> None:
            super().__init__()
            self._connect(sock)  # type: ignore[attr-defined]  # paramiko 3-5: stable

        def close(self) -> None:
            self._close()  # type: ignore[attr-defined]

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(_remaining(deadline))
        sock.connect(os.path.expanduser(path))
        agent = _SocketAgent(sock)
    except (OSError, paramiko.SSHException) as exc:
        sock.close()
        notes.append(f"ssh-agent at {path} not usable ({exc})")
        return None, []
    return agent, list(agent.get_keys())


def _public_blob(path: str) -> bytes | None:
    import base64

    try:
        with open(path + ".pub", encoding="utf-8") as handle:
            fields = handle.read().split()
        return base64.b64decode(fields[1]) if len(fields) >= 2 else None
    except (OSError, ValueError):
        return None


def _load_key(path: str, notes: list[str]) -> paramiko.PKey | None:
    import paramiko

    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        notes.append(f"{path} is encrypted (add it to ssh-agent with `ssh-add {path}`)")
    except paramiko.pkey.UnknownKeyType as exc:
        kind = exc.key_type if isinstance(exc.key_type, str) else "this type"
        notes.append(f"{path} holds a key gpuconsole cannot use ({kind}; paramiko has no support)")
    except (paramiko.SSHException, ValueError, OSError, TypeError) as exc:
        notes.append(f"{path} cannot be loaded ({exc})")
    return None


def _key_label(key: paramiko.PKey, source: str) -> str:
    return f"{source} ({key.get_name()} {fingerprint_sha256(key.asbytes())})"


def _authenticate(
    transport: paramiko.Transport, target: SshTarget, ctx: _Context, deadline: float
) -> None:
    tried: list[str] = []
    notes: list[str] = []
    offered: set[bytes] = set()
    agent, agent_keys = _agent_keys(target, deadline, notes)
    try:
        allowed: set[bytes] | None = None
        if target.identities_only:
            allowed = set()
            for path in target.identity_files:
                blob = _public_blob(path)
                if blob is not None:
                    allowed.add(blob)
        for key in agent_keys:
            if allowed is not None and key.asbytes() not in allowed:
                continue
            comment = getattr(key, "comment", "") or "agent key"
            if _try_key(transport, target, ctx, deadline, key, _key_label(key, comment), tried):
                return
            offered.add(key.asbytes())
        for path in target.identity_files:
            if not os.path.isfile(path):
                continue
            loaded = _load_key(path, notes)
            if loaded is None or loaded.asbytes() in offered:
                continue
            if _try_key(transport, target, ctx, deadline, loaded, path, tried):
                return
            offered.add(loaded.asbytes())
    finally:
        if agent is not None:
            agent.close()
    raise SshAuthFailed(ctx.host_name, target, tried, notes)


def _try_key(
    transport: paramiko.Transport,
    target: SshTarget,
    ctx: _Context,
    deadline: float,
    key: paramiko.PKey,
    label: str,
    tried: list[str],
) -> bool:
    import paramiko

    tried.append(label)
    transport.auth_timeout = _remaining(deadline)
    try:
        more = transport.auth_publickey(target.user, key)
    except paramiko.BadAuthenticationType as exc:
        raise SshAuthFailed(
            ctx.host_name,
            target,
            tried[:-1],
            [],
            "the server does not accept public keys (it allows: "
            f"{', '.join(exc.allowed_types) or 'nothing'})",
        ) from exc
    except (paramiko.SSHException, EOFError, OSError) as exc:
        if time.monotonic() >= deadline:
            raise _unreachable(
                target, ctx, f"authentication not finished within {ctx.timeout:g} s"
            ) from exc
        if not transport.is_active():
            raise SshAuthFailed(
                ctx.host_name,
                target,
                tried,
                [],
                "the server closed the connection (too many keys offered? sshd's MaxAuthTries:"
                " set IdentitiesOnly yes and the right IdentityFile)",
            ) from exc
        if isinstance(exc, paramiko.AuthenticationException):
            return False  # this key was refused: try the next one
        tried[-1] += f" [failed: {exc}]"
        return False
    if more:
        raise SshAuthFailed(
            ctx.host_name,
            target,
            tried,
            [],
            f"the key was accepted but the server also wants {', '.join(more)}, "
            "which gpuconsole does not do",
        )
    return transport.is_authenticated()
