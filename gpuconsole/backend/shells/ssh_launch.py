"""Into an SSH launch: the system ssh when there is one, else a session through paramiko.

The launch's sshd listens on its host's loopback. On a remote host the console reaches it
through the host's tunnel (one more channel on the connection it already has — no second login,
and no need for the user's ssh to know how gpuconsole reaches that host); the shown
``ssh -J ...`` command stays what a user types elsewhere.

Host keys: every launch generates its own, and loopback ports are reused by later launches, so
each container is remembered under its own alias (``HostKeyAlias``), never as ``127.0.0.1``:
the first time the user is asked with the fingerprint (ssh's own prompt, or ours), a changed
key for the same container is refused.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.errors import GpuconsoleError

if TYPE_CHECKING:
    import paramiko

    from gpuconsole.backend.hosts.machine import Connection
    from gpuconsole.backend.launch.launcher import LaunchResult

KNOWN_HOSTS = "~/.ssh/known_hosts"

#: Asked when a launch's host key is new: (alias, key type, fingerprint) -> trust it?
AskTrust = Callable[[str, str, str], bool]


@dataclass(frozen=True, slots=True)
class SshLaunch:
    """Where a launch's sshd is, as its host sees it, and who logs in."""

    user: str
    address: str
    port: int
    identity: str | None
    alias: str


def ssh_launch(host_name: str, launch: LaunchResult) -> SshLaunch | None:
    """The launch's sshd from its ssh command (``ssh [-J J] -p PORT [-i KEY] USER@ADDR``, the
    form ``readiness.ssh_command`` writes); None for a launch without one."""
    if not launch.ssh_command:
        return None
    words = shlex.split(launch.ssh_command)
    options = dict(zip(words[1:-1:2], words[2:-1:2], strict=False))
    user, _, address = words[-1].rpartition("@")
    try:
        port = int(options.get("-p", "22"))
    except ValueError:
        return None
    alias = f"gpuconsole-{host_name}-{launch.id[:12]}"
    identity = options.get("-i")
    if identity and not os.path.isfile(os.path.expanduser(identity)):
        identity = None  # launched from another machine: ssh's own keys and agent, then
    return SshLaunch(user or "root", address, port, identity, alias)


def system_ssh() -> str | None:
    return shutil.which("ssh")


def system_ssh_argv(ssh: str, target: SshLaunch, port: int) -> list[str]:
    """The system ssh to ``127.0.0.1:port`` (the launch's port here, or a tunnel to it)."""
    argv = [ssh, "-p", str(port), "-o", f"HostKeyAlias={target.alias}"]
    from gpuconsole.backend.ssh.config import home_moved

    if home_moved():  # ssh reads the passwd home's ~/.ssh; gpuconsole honours $HOME
        argv += ["-o", f"UserKnownHostsFile={os.path.expanduser(KNOWN_HOSTS)}"]
    if target.identity:
        argv += ["-i", target.identity]
    return [*argv, f"{target.user}@127.0.0.1"]


class _ParamikoPty:
    """A remote shell on a paramiko session channel (the Machine ``Pty`` protocol)."""

    def __init__(self, client: paramiko.SSHClient, channel: paramiko.Channel) -> None:
        self._client = client
        self._chan = channel

    def read(self, size: int = 65536) -> bytes:
        return bytes(self._chan.recv(size))

    def write(self, data: bytes) -> None:
        self._chan.sendall(data)

    def resize(self, cols: int, rows: int) -> None:
        self._chan.resize_pty(width=cols, height=rows)

    def fileno(self) -> int:
        return int(self._chan.fileno())

    def wait(self, timeout: float | None = None) -> int | None:
        if self._chan.status_event.wait(timeout):
            return int(self._chan.exit_status)
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._chan.close()
        with contextlib.suppress(Exception):
            self._client.close()


def ask_on_terminal(alias: str, key_type: str, fingerprint: str) -> bool:
    """ssh's question, on this (cooked) terminal."""
    sys.stderr.write(
        f"The authenticity of {alias} can't be established.\n"
        f"{key_type} key fingerprint is {fingerprint}.\n"
        "Are you sure you want to continue connecting (yes/no)? "
    )
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("yes", "y")


def paramiko_session(
    connection: Connection,
    target: SshLaunch,
    cols: int,
    rows: int,
    ask: AskTrust = ask_on_terminal,
    known_hosts: str = KNOWN_HOSTS,
    timeout: float = 10.0,
) -> _ParamikoPty:
    """A login shell into the launch over ``connection`` (a socket, or an SSH channel to the
    host's loopback). Its host key is checked under the launch's alias; raises GpuconsoleError
    for a changed or refused key and for failed authentication."""
    import paramiko

    from gpuconsole.backend.ssh.trust import Trust, check_host_key, remember_host_key

    class _Verify(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
            verdict = check_host_key(target.alias, 22, key, [known_hosts])
            if verdict.status is Trust.KNOWN:
                return
            if verdict.status is not Trust.UNKNOWN:
                raise GpuconsoleError(
                    f"the host key of {target.alias} CHANGED ({verdict.fingerprint}; "
                    f"{verdict.path}:{verdict.line} holds another) — refused; if the container "
                    "was re-created on purpose, delete that line"
                )
            if not ask(target.alias, verdict.key_type, verdict.fingerprint):
                raise GpuconsoleError(f"host key of {target.alias} not trusted — not connected")
            remember_host_key(target.alias, 22, key, known_hosts)

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_Verify())
    try:
        client.connect(
            target.alias,
            username=target.user,
            key_filename=target.identity,
            sock=connection,  # type: ignore[arg-type]
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        channel = client.invoke_shell(term="xterm-256color", width=cols, height=rows)
    except GpuconsoleError:
        client.close()
        raise
    except (paramiko.SSHException, OSError) as exc:
        client.close()
        raise GpuconsoleError(
            f"cannot ssh into {target.user}@{target.alias}: {exc} — is the key it was "
            "launched with (--ssh-key) loaded or given with -i?"
        ) from exc
    return _ParamikoPty(client, channel)


__all__ = [
    "SshLaunch",
    "ask_on_terminal",
    "paramiko_session",
    "ssh_launch",
    "system_ssh",
    "system_ssh_argv",
]
