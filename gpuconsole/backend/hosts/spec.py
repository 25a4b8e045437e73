"""What the configuration says about one host, before anything is connected.

Plain values, so the settings layer can build them from TOML and Docker contexts without the
backend knowing about files, and ``open_hosts`` can build hosts from them without knowing TOML.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_REMOTE_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True, slots=True)
class HostSpec:
    """One host of the fleet. ``ssh`` None means the local engine.

    ``origin`` says where it came from for messages: ``config file, [[hosts]] #2``,
    ``docker context gpu1``, ``default``.
    """

    name: str
    ssh: str | None = None
    identity_file: str | None = None
    docker_socket: str = DEFAULT_REMOTE_SOCKET
    #: The local engine's URL (``--docker-host``, ``[docker] host``, $DOCKER_HOST); local only.
    docker_url: str | None = None
    enabled: bool = True
    origin: str = "default"

    @property
    def is_local(self) -> bool:
        return self.ssh is None


@dataclass(frozen=True, slots=True)
class SshOptions:
    """Connection policy shared by every SSH host (``[ssh]`` in the config)."""

    connect_timeout: float = 10.0
    probe_interval: float = 5.0
    probe_timeout: float = 3.0
    down_after: int = 2
    accept_new_host_key: bool = False
    #: Probe a host whose streams bring output now and then all the same (every 6 probe
    #: intervals), for its latency; off where no one shows it (the recorder).
    latency_probes: bool = True
