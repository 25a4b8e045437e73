"""Turn the engine's JSON (list and inspect answers) into the backend's frozen models.

Kept apart from the transport so a remote host, which gets the same JSON over SSH, reuses it.
An answer that is not what Docker sends (a proxy's error page, an engine fork, a field of the
wrong type) raises EngineAnswerError naming the answer, never a bare KeyError from deep inside:
the console shows it as that host's error and goes on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from gpuconsole.backend.errors import DockerApiError
from gpuconsole.backend.models import (
    NO_GPUS,
    ContainerDetails,
    ContainerSummary,
    GpuRequest,
    Mount,
    PortMapping,
)

P = ParamSpec("P")
R = TypeVar("R")


class EngineAnswerError(DockerApiError):
    """The engine answered with JSON this console cannot read."""


def _reads(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn any slip while reading ``what`` into an EngineAnswerError that says so."""

    def wrap(read: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(read)
        def reading(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return read(*args, **kwargs)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
                raise EngineAnswerError(
                    f"the engine's {what} is not what Docker sends ({type(exc).__name__}: "
                    f"{detail}) — is DOCKER_HOST / the host's socket a Docker engine?"
                ) from exc

        return reading

    return wrap


def _text(value: Any) -> str:
    """A text field; a null is empty, not the word None."""
    return "" if value is None else str(value)


def _strs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _mounts(raw: Any) -> tuple[Mount, ...]:
    return tuple(
        Mount(
            type=str(m.get("Type", "")),
            source=str(m.get("Source") or m.get("Name") or ""),
            destination=str(m.get("Destination", "")),
            read_only=not m.get("RW", True),
        )
        for m in raw or ()
    )


@_reads("container list")
def summary_from_list(host: str, raw: dict[str, Any]) -> ContainerSummary:
    """One entry of ``GET /containers/json``."""
    names = raw.get("Names") or []
    if isinstance(names, str):
        names = [names]
    name = str(names[0]).lstrip("/") if names else ""
    name = name or str(raw["Id"])[:12]
    ports = tuple(
        sorted(
            {
                PortMapping(
                    private_port=int(p["PrivatePort"]),
                    protocol=str(p.get("Type", "tcp")),
                    host_ip=p.get("IP"),
                    host_port=int(p["PublicPort"]) if p.get("PublicPort") else None,
                )
                for p in raw.get("Ports") or ()
            },
            key=lambda p: (p.private_port, p.protocol, p.host_ip or "", p.host_port or 0),
        )
    )
    labels = tuple(sorted((str(k), _text(v)) for k, v in (raw.get("Labels") or {}).items()))
    return ContainerSummary(
        host=host,
        id=str(raw["Id"]),
        name=name,
        image=_text(raw.get("Image")),
        state=_text(raw.get("State")),
        status=_text(raw.get("Status")),
        created=float(raw.get("Created") or 0),
        ports=ports,
        labels=labels,
        mounts=_mounts(raw.get("Mounts")),
        command=str(raw.get("Command", "")),
    )


@_reads("GPU request (HostConfig.DeviceRequests)")
def gpu_request_from_host_config(host_config: dict[str, Any]) -> GpuRequest:
    """What ``--gpus`` asked for, from HostConfig.DeviceRequests."""
    requests = host_config.get("DeviceRequests") or []
    all_gpus = False
    count = 0
    ids: list[str] = []
    for req in requests:
        caps = [c for group in req.get("Capabilities") or [] for c in group]
        if "gpu" not in caps and req.get("Driver") not in ("nvidia", "cdi"):
            continue
        if req.get("DeviceIDs"):
            ids.extend(str(d) for d in req["DeviceIDs"])
        elif int(req.get("Count") or 0) < 0:
            all_gpus = True
        else:
            count += int(req.get("Count") or 0)
    if not all_gpus and not count and not ids:
        return NO_GPUS
    return GpuRequest(all=all_gpus, count=count, device_ids=tuple(ids))


def _ports_from_inspect(raw: dict[str, Any]) -> tuple[PortMapping, ...]:
    out: list[PortMapping] = []
    for key, bindings in ((raw.get("NetworkSettings") or {}).get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        if not bindings:
            out.append(PortMapping(int(port), proto or "tcp"))
            continue
        for b in bindings:
            out.append(
                PortMapping(
                    int(port),
                    proto or "tcp",
                    b.get("HostIp") or None,
                    int(b["HostPort"]) if b.get("HostPort") else None,
                )
            )
    return tuple(sorted(out, key=lambda p: (p.private_port, p.host_ip or "", p.host_port or 0)))


@_reads("container inspect answer")
def details_from_inspect(host: str, raw: dict[str, Any]) -> ContainerDetails:
    """``GET /containers/{id}/json``; the summary part is rebuilt from the same answer."""
    config = raw.get("Config") or {}
    state = raw.get("State") or {}
    hc = raw.get("HostConfig") or {}
    env = []
    for item in config.get("Env") or ():
        key, _, value = str(item).partition("=")
        env.append((key, value))
    labels = tuple(sorted((config.get("Labels") or {}).items()))
    mounts = _mounts(raw.get("Mounts"))
    ports = _ports_from_inspect(raw)
    status = str(state.get("Status", ""))
    summary = ContainerSummary(
        host=host,
        id=str(raw["Id"]),
        name=str(raw.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", raw.get("Image", ""))),
        state=status,
        status=status,
        created=0.0,
        ports=ports,
        labels=labels,
        mounts=mounts,
        command=" ".join(_strs(config.get("Entrypoint")) + _strs(config.get("Cmd"))),
    )
    started = state.get("StartedAt")
    finished = state.get("FinishedAt")
    zero = "0001-01-01T00:00:00Z"
    return ContainerDetails(
        summary=summary,
        command=_strs(config.get("Cmd")),
        entrypoint=_strs(config.get("Entrypoint")),
        created_iso=str(raw.get("Created", "")),
        started_at=started if started and started != zero else None,
        finished_at=finished if finished and finished != zero else None,
        exit_code=state.get("ExitCode"),
        restart_policy=str((hc.get("RestartPolicy") or {}).get("Name") or "no"),
        memory_limit_bytes=hc.get("Memory") or None,
        nano_cpus=hc.get("NanoCpus") or None,
        shm_size_bytes=hc.get("ShmSize") or None,
        gpus=gpu_request_from_host_config(hc),
        env=tuple(env),
        labels=labels,
        mounts=mounts,
        ports=ports,
        ulimits=tuple(
            (str(u.get("Name")), int(u.get("Soft", 0)), int(u.get("Hard", 0)))
            for u in hc.get("Ulimits") or ()
        ),
        pid=state.get("Pid") or None,
    )


@_reads("stats answer")
def stats_from_api(raw: dict[str, Any]) -> tuple[float | None, int | None, int | None]:
    """CPU %, memory used and limit from one ``GET /containers/{id}/stats?stream=0`` answer,
    computed as the docker CLI does."""
    cpu = raw.get("cpu_stats") or {}
    pre = raw.get("precpu_stats") or {}
    cpu_percent: float | None = None
    try:
        cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        sys_delta = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
        online = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or []) or 1
        if sys_delta > 0 and cpu_delta >= 0:
            cpu_percent = cpu_delta / sys_delta * online * 100.0
    except (KeyError, TypeError):
        cpu_percent = None
    mem = raw.get("memory_stats") or {}
    usage = mem.get("usage")
    stats = mem.get("stats") or {}
    inactive = stats.get("total_inactive_file", stats.get("inactive_file"))
    if usage is not None and inactive is not None and inactive < usage:
        usage -= inactive
    return cpu_percent, usage, mem.get("limit")
