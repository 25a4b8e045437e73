"""Build the fleet's hosts from their specs: the one place where a host gets its parts.

The local host gets this computer's machine, the engine at its URL and NVML (else one
``nvidia-smi`` stream, else none). An SSH host gets one supervised SSH connection that carries
its engine's API (the remote socket forwarded over the connection), its cgroup reads and its
``nvidia-smi`` stream. Nothing connects here: the first refresh does, in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gpuconsole.backend.hosts.host import Host
from gpuconsole.backend.hosts.spec import HostSpec, SshOptions

if TYPE_CHECKING:
    import docker
    import paramiko

    from gpuconsole.backend.gpu.models import GpuSource
    from gpuconsole.backend.hosts.machine import Connection, Machine
    from gpuconsole.backend.hosts.ssh_machine import SshMachine
    from gpuconsole.backend.ssh.trust import HostKeyUnknown

DEFAULT_SSH = SshOptions()

#: Asked (from a connection thread) whether to trust an unknown host key; True trusts it.
UnknownKeyPrompt = Callable[["HostKeyUnknown"], bool]


def local_host(
    docker_url: str | None = None,
    *,
    name: str = "local",
    gpu: GpuSource | bool | None = True,
    gpu_interval: float = 1.0,
    timeout: int = 10,
    spec: HostSpec | None = None,
) -> Host:
    """This computer's engine (``docker_url``, else $DOCKER_HOST, else the default socket).

    ``gpu``: True for this machine's GPUs, False for none, or a source (a replay).
    An engine URL that is not this machine's socket (tcp://elsewhere) gets no GPUs: they would
    be this computer's, not the engine's.
    """
    from gpuconsole.backend.docker.engine import (
        DockerEngine,
        default_docker_host,
        socket_path,
        url_connector,
    )
    from gpuconsole.backend.hosts.local import LocalMachine

    url = docker_url or default_docker_host()
    machine = LocalMachine(name)
    path = socket_path(url)
    on_this_machine = path is not None
    engine = DockerEngine(
        machine,
        url,
        url_connector(url),
        timeout=timeout,
        use_cgroups=on_this_machine,
        socket=path,
        ping_connect=_unix_connector(machine, path) if path is not None else None,
    )
    source: GpuSource | None
    if gpu is True:
        if on_this_machine:
            from gpuconsole.backend.gpu.factory import LocalGpuSource

            source = LocalGpuSource(gpu_interval, host=name)
        else:
            from gpuconsole.backend.gpu.factory import NoGpuSource

            source = NoGpuSource(
                f"the engine at {url} is not on this computer, so its GPUs cannot be read from "
                "here — add it as an SSH host ([[hosts]] ssh = ...) to see them",
                name,
            )
    elif gpu is False:
        source = None
    else:
        source = gpu
    return Host(name, machine, engine, source, spec or HostSpec(name, docker_url=docker_url))


def ssh_host(
    spec: HostSpec,
    options: SshOptions = DEFAULT_SSH,
    *,
    gpu: GpuSource | bool | None = True,
    gpu_interval: float = 1.0,
    timeout: int = 10,
    on_unknown_key: UnknownKeyPrompt | None = None,
    handshakes: threading.Semaphore | None = None,
    gpu_read_in_sample: bool = False,
) -> Host:
    """A remote host over ONE SSH connection (resolved and opened on first use).

    ``gpu_read_in_sample``: its nvidia-smi stream is read by whoever samples it, not by a
    thread of its own (see SmiStreamSource)."""
    from gpuconsole.backend.docker.engine import DockerEngine
    from gpuconsole.backend.hosts.ssh_machine import SshMachine

    assert spec.ssh is not None
    target_spec = spec.ssh

    def connect() -> paramiko.Transport:
        from gpuconsole.backend.ssh.config import resolve_target
        from gpuconsole.backend.ssh.connect import HANDSHAKES, open_transport

        target = resolve_target(target_spec, identity_file=spec.identity_file)
        return open_transport(
            target,
            host_name=spec.name,
            timeout=options.connect_timeout,
            accept_new_host_key=options.accept_new_host_key,
            on_unknown_key=on_unknown_key,
            limiter=handshakes or HANDSHAKES,
        )

    machine = SshMachine(
        spec.name,
        target_spec,
        connect,
        probe_interval=options.probe_interval,
        probe_timeout=options.probe_timeout,
        down_after=options.down_after,
        latency_probes=options.latency_probes,
    )
    address = f"ssh://{target_spec}{spec.docker_socket}"
    engine = DockerEngine(
        machine,
        address,
        _ssh_connector(machine, spec.docker_socket),
        timeout=timeout,
        socket=spec.docker_socket,
        # The liveness check's own stream-local channel on the same transport (used only while
        # the API itself goes that way, not over dial-stdio sessions).
        ping_connect=_unix_connector(machine, spec.docker_socket),
    )
    source: GpuSource | None
    if gpu is True:
        from gpuconsole.backend.gpu.smi_stream import SmiStreamSource

        source = SmiStreamSource(
            machine,
            host=spec.name,
            interval=gpu_interval,
            with_origins=True,
            read_in_sample=gpu_read_in_sample,
        )
    elif gpu is False:
        source = None
    else:
        source = gpu
    return Host(spec.name, machine, engine, source, spec)


def _unix_connector(machine: Machine, path: str) -> Callable[[float], Connection]:
    """Connections to the engine's socket on the machine (a unix socket here, a stream-local
    channel on the host's SSH transport there): the liveness check keeps one open."""

    def connect(timeout: float) -> Connection:
        return machine.connect_unix(path, timeout)

    return connect


def _ssh_connector(machine: SshMachine, socket: str) -> Callable[[int], docker.APIClient]:
    """The engine's API over the machine's connection: the remote socket forwarded as a
    stream-local channel, or (where sshd forbids that) ``docker system dial-stdio`` sessions."""

    def connect(timeout: int) -> docker.APIClient:
        from gpuconsole.backend.ssh.docker_api import (
            api_client,
            dial_stdio_opener,
            negotiate_version,
            open_error,
        )
        from gpuconsole.backend.ssh.streamlocal import StreamLocalRefused

        def over_streamlocal(t: float) -> Connection:
            return machine.connect_unix(socket, t)

        client = api_client(over_streamlocal, timeout=timeout, base_label="stream-local")
        try:
            negotiate_version(client)
        except Exception as exc:
            if not isinstance(open_error(exc), StreamLocalRefused):
                raise
            # sshd says AllowStreamLocalForwarding no: a few `docker system dial-stdio`
            # sessions instead (they count against MaxSessions, so at most 3).
            client.close()
            client = api_client(
                dial_stdio_opener(machine.transport()), timeout=timeout, base_label="dial-stdio"
            )
            negotiate_version(client)
        return client

    return connect


def open_hosts(
    specs: Sequence[HostSpec],
    options: SshOptions = DEFAULT_SSH,
    *,
    gpu_replay: Path | None = None,
    gpu_interval: float = 1.0,
    gpus: bool = True,
    on_unknown_key: UnknownKeyPrompt | None = None,
    gpu_read_in_sample: bool = False,
) -> list[Host]:
    """One Host per enabled spec, in order. A replay stands in for the first host's GPUs.
    ``gpu_read_in_sample``: see ``ssh_host``.

    Raises ReplayError when the replay file cannot be read (the user asked for it).
    """
    hosts: list[Host] = []
    replay: GpuSource | None = None
    if gpu_replay is not None:
        from gpuconsole.backend.gpu.replay import ReplaySource

        replay = ReplaySource.from_file(gpu_replay)
    for spec in specs:
        if not spec.enabled:
            continue
        gpu: GpuSource | bool = gpus
        if replay is not None and not hosts:
            gpu = replay
        if spec.is_local:
            hosts.append(
                local_host(
                    spec.docker_url, name=spec.name, gpu=gpu, gpu_interval=gpu_interval, spec=spec
                )
            )
        else:
            hosts.append(
                ssh_host(
                    spec,
                    options,
                    gpu=gpu,
                    gpu_interval=gpu_interval,
                    on_unknown_key=on_unknown_key,
                    gpu_read_in_sample=gpu_read_in_sample,
                )
            )
    return hosts
