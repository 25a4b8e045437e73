"""``gpuconsole gpus``: per-GPU telemetry with the containers holding each GPU.

Exit status: 0 with GPU data; 1 when a host has no GPU telemetry or cannot be reached (the
reason goes to stderr; ``--json`` still prints a valid list, of the GPUs that were read).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuconsole.cli.common import add_host_option, close_all, each_host, err, open_for, print_table

if TYPE_CHECKING:
    from gpuconsole.backend.gpu import GpuSnapshot, GpuSource
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.settings.config import Settings

COMMANDS: frozenset[str] = frozenset({"gpus"})


def add_parsers(sub: Any) -> None:
    """Register ``gpus`` on the top-level parser's subparsers."""
    p = sub.add_parser("gpus", help="GPU memory, power, utilization and who holds each GPU")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--replay",
        metavar="FILE",
        type=Path,
        help="read a recorded JSONL instead of this host's GPUs",
    )
    add_host_option(p, all_hosts=True)


def first_sample(source: GpuSource, wait: float = 5.0) -> GpuSnapshot:
    """A stream source needs a moment for its first line and its first process list (the
    owners of the GPUs); give it up to ``wait`` seconds."""
    from gpuconsole.backend.gpu import GpuSourceState

    deadline = time.monotonic() + wait
    snap = source.sample()
    while time.monotonic() < deadline and (
        snap.state is GpuSourceState.STARTING or getattr(source, "processes_pending", False)
    ):
        time.sleep(0.1)
        snap = source.sample()
    return snap


def _owners(snap: GpuSnapshot, host: Host) -> dict[int, str]:
    """PID -> container name on ``host`` (attributed there); empty when its engine is down."""
    from gpuconsole.backend.errors import GpuconsoleError
    from gpuconsole.backend.gpu import attribute_gpu_processes

    if snap.replayed or not snap.processes:
        return {}
    try:
        containers = host.engine.list_containers(all=False)
        requests = host.engine.gpu_requests([c.id for c in containers])
    except GpuconsoleError as exc:
        err(f"{host.name}: containers unknown: {exc}")
        return {}
    names = {c.id: c.name for c in containers}
    attribution = attribute_gpu_processes(
        snap, requests, known_ids=names.keys(), machine=host.machine
    )
    return {
        p.process.pid: names.get(p.container_id, p.container_id[:12])
        for p in attribution.processes
        if p.container_id is not None
    }


def _sample(host: Host) -> tuple[GpuSnapshot, dict[int, str]]:
    assert host.gpu is not None
    snap = first_sample(host.gpu)
    host.gpu.close()
    return snap, _owners(snap, host)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuconsole.backend.gpu import GpuSourceState, ReplayError, gpu_report
    from gpuconsole.present import format as fmt

    hosts = open_for(settings, args, gpus=True)
    try:
        if args.replay is not None:
            from gpuconsole.backend.gpu import ReplaySource

            try:
                replay = ReplaySource.from_file(args.replay)
            except ReplayError as exc:
                err(f"--replay: {exc}")
                return 1
            if replay.note:
                err(f"--replay {args.replay}: {replay.note}")
            hosts[0].gpu = replay
        results = each_host(hosts, _sample)
    finally:
        close_all(hosts)
    snaps: list[GpuSnapshot] = []
    owners: dict[Any, str] = {}
    several = len(hosts) > 1
    status = 0
    for host, result in zip(hosts, results, strict=True):
        if isinstance(result, BaseException):
            err(f"{host.name}: {result}")
            status = 1
            continue
        snap, mine = result
        if snap.state is GpuSourceState.UNAVAILABLE or not snap.gpus:
            where = f"{host.name}: " if several or not host.is_local else ""
            reason = snap.error or (
                f"{snap.source} gave no reading within 5 s"
                if snap.state is GpuSourceState.STARTING
                else "no GPUs found"
            )
            err(f"{where}no GPU telemetry: {reason}")
            status = 1
            if not snap.gpus:
                continue
        snaps.append(snap)
        for pid, name in mine.items():
            owners[(snap.host, pid) if several else pid] = name
    if args.json:
        print(json.dumps(gpu_report(snaps, owners), indent=2))
        return status
    if not snaps:
        return 1
    if any(s.replayed for s in snaps):
        print(f"(replayed from {args.replay})")
    rows = [
        (
            *(("HOST",) if several else ()),
            *("GPU", "NAME", "UTIL", "MEMORY", "POWER", "TEMP", "PROCESSES"),
        )
    ]
    notes: list[str] = []
    for snap in snaps:
        for g in snap.gpus:
            procs = []
            for p in snap.processes_on(g.index):
                who = owners.get((snap.host, p.pid) if several else p.pid) or f"pid {p.pid}"
                procs.append(f"{who} ({fmt.size(p.used_memory_bytes)})")
            rows.append(
                (
                    *((snap.host,) if several else ()),
                    str(g.index),
                    g.name,
                    fmt.percent(g.utilization_gpu_percent),
                    f"{fmt.size(g.memory_used_bytes)} / {fmt.size(g.memory_total_bytes)}",
                    fmt.watts(g.power_w, g.power_limit_w),
                    fmt.celsius(g.temperature_c),
                    ", ".join(procs) or fmt.NONE,
                )
            )
            if g.error:  # under the table: a long sentence would widen the NAME column
                notes.append(f"{snap.host}: {g.error}" if several else g.error)
    print_table(rows)
    for note in notes:
        print(note)
    return status
