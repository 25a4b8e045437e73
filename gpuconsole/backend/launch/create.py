"""Turn a LaunchPlan into the engine's create request — pure data, testable without an engine.

Everything a ``docker run`` of the README would set is here: limits, shm, ulimits, ports on the
bind address only, mounts, GPUs both as DeviceRequests and as NVIDIA_VISIBLE_DEVICES (an image
with NVIDIA_VISIBLE_DEVICES=all under the nvidia default runtime would otherwise see every GPU),
and the ``gpuconsole.*`` labels from which a restarted console finds the launch again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpuconsole import __version__
from gpuconsole.backend.launch.spec import (
    KEYS_ENV,
    LABEL_BIND,
    LABEL_CONTAINER_PORT,
    LABEL_GPUS,
    LABEL_NOTES,
    LABEL_PORT,
    LABEL_PROFILE,
    LABEL_SSH_IDENTITY,
    LABEL_SSH_USER,
    LABEL_TOKEN_ENV,
    LABEL_VARIANT,
    LABEL_VERSION,
    SSH_USER,
    TOKEN_ENV,
    LaunchPlan,
)
from gpuconsole.backend.launch.variants import variant_command


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """Arguments for ``APIClient.create_container``; ``host_config`` for create_host_config."""

    image: str
    name: str
    command: list[str] | None
    environment: dict[str, str]
    labels: dict[str, str]
    ports: list[int]
    working_dir: str | None
    user: str | None
    host_config: dict[str, Any] = field(default_factory=dict)
    #: Values that must never be shown or logged (the Jupyter token).
    secrets: tuple[str, ...] = ()


def launch_labels(plan: LaunchPlan) -> dict[str, str]:
    labels = dict(plan.labels)
    labels[LABEL_VARIANT] = plan.variant
    labels[LABEL_VERSION] = __version__
    labels[LABEL_GPUS] = plan.gpus.text()
    if plan.spec.profile:
        labels[LABEL_PROFILE] = plan.spec.profile
    if plan.host_port is not None and plan.container_port is not None:
        labels[LABEL_PORT] = str(plan.host_port)
        labels[LABEL_CONTAINER_PORT] = str(plan.container_port)
        labels[LABEL_BIND] = plan.bind
    if plan.variant == "jupyter":
        labels[LABEL_TOKEN_ENV] = TOKEN_ENV
    if plan.variant == "ssh":
        labels[LABEL_SSH_USER] = SSH_USER
        if plan.ssh_key_path:
            labels[LABEL_SSH_IDENTITY] = plan.ssh_key_path
    if plan.notes:
        labels[LABEL_NOTES] = NOTES_SEPARATOR.join(n.message for n in plan.notes)
    return labels


#: Between the notes in the LABEL_NOTES label (no note contains it).
NOTES_SEPARATOR = "; "


def notes_from_labels(labels: dict[str, str]) -> tuple[str, ...]:
    """The defaults a launch did not get, from its labels (the details screen shows them)."""
    text = labels.get(LABEL_NOTES, "")
    return tuple(n for n in text.split(NOTES_SEPARATOR) if n)


def device_requests(plan: LaunchPlan) -> list[dict[str, Any]]:
    """``--gpus``: Count -1 for all, DeviceIDs for a selection, nothing for none."""
    if plan.gpus.all:
        return [{"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]]}]
    if plan.gpus.ids:
        return [
            {"Driver": "", "Count": 0, "DeviceIDs": list(plan.gpus.ids), "Capabilities": [["gpu"]]}
        ]
    return []


def build_create_request(plan: LaunchPlan, token: str | None = None) -> CreateRequest:
    env = dict(plan.env)
    env["NVIDIA_VISIBLE_DEVICES"] = plan.gpus.visible_devices
    secrets: tuple[str, ...] = ()
    if plan.variant == "jupyter":
        if not token:
            raise ValueError("a jupyter launch needs a token")
        env[TOKEN_ENV] = token
        secrets = (token,)
    if plan.variant == "ssh" and plan.ssh_public_key:
        env[KEYS_ENV] = plan.ssh_public_key
    host_config: dict[str, Any] = {
        "ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in plan.ulimits],
    }
    if plan.memory_bytes is not None:
        host_config["mem_limit"] = plan.memory_bytes
    if plan.nano_cpus is not None:
        host_config["nano_cpus"] = plan.nano_cpus
    if plan.shm_size_bytes is not None:
        host_config["shm_size"] = plan.shm_size_bytes
    if plan.ipc_host:
        host_config["ipc_mode"] = "host"
    if plan.volumes:
        host_config["binds"] = [v.text() for v in plan.volumes]
    ports: list[int] = []
    if plan.container_port is not None and plan.host_port is not None:
        ports = [plan.container_port]
        host_config["port_bindings"] = {plan.container_port: (plan.bind, plan.host_port)}
    requests = device_requests(plan)
    if requests:
        host_config["device_requests"] = requests
    return CreateRequest(
        image=plan.image,
        name=plan.name,
        command=variant_command(plan.variant, plan.command),
        environment=env,
        labels=launch_labels(plan),
        ports=ports,
        working_dir=plan.workdir or None,
        user=plan.user or None,
        host_config=host_config,
        secrets=secrets,
    )
