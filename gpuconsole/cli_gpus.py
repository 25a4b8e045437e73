"""``gpuconsole gpus``: per-GPU telemetry with the containers holding each GPU.

Exit status: 0 with GPU data; 1 when this host has no GPU telemetry (the reason goes to stderr;
``--json`` still prints a valid, empty list so scripts can parse it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpuconsole.backend.gpu import GpuSnapshot, GpuSource
    from gpuconsole.config import Settings

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


def first_sample(source: GpuSource, wait: float = 5.0) -> GpuSnapshot:
    """A stream source needs a moment for its first line; give it up to ``wait`` seconds."""
    from gpuconsole.backend.gpu import GpuSourceState

    deadline = time.monotonic() + wait
    snap = source.sample()
    while snap.state is GpuSourceState.STARTING and time.monotonic() < deadline:
        time.sleep(0.1)
        snap = source.sample()
    return snap


def _owners(snap: GpuSnapshot, settings: Settings, args: argparse.Namespace) -> dict[int, str]:
    """PID -> container name, from the local engine; empty (with a note) when it is down."""
    from gpuconsole.backend.errors import GpuconsoleError
    from gpuconsole.backend.gpu import attribute_gpu_processes
    from gpuconsole.cli import make_host

    if snap.replayed or not snap.processes:
        return {}
    host = make_host(settings, args)
    try:
        containers = host.list_containers(all=False)
        requests = host.gpu_requests([c.id for c in containers])
    except GpuconsoleError as exc:
        print(f"gpuconsole: containers unknown: {exc}", file=sys.stderr)
        return {}
    finally:
        host.close()
    names = {c.id: c.name for c in containers}
    attribution = attribute_gpu_processes(snap, requests, known_ids=names.keys())
    return {
        p.process.pid: names.get(p.container_id, p.container_id[:12])
        for p in attribution.processes
        if p.container_id is not None
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuconsole import format as fmt
    from gpuconsole.backend.gpu import (
        GpuSourceState,
        ReplayError,
        gpu_report,
        open_local_gpu_source,
    )

    try:
        source = open_local_gpu_source(args.replay)
    except ReplayError as exc:
        print(f"gpuconsole: --replay: {exc}", file=sys.stderr)
        return 1
    try:
        snap = first_sample(source)
    finally:
        source.close()
    owners = _owners(snap, settings, args)
    unavailable = snap.state is GpuSourceState.UNAVAILABLE or not snap.gpus
    if unavailable:
        print(f"gpuconsole: no GPU telemetry: {snap.error or 'no GPUs found'}", file=sys.stderr)
    if args.json:
        print(json.dumps(gpu_report([snap], owners), indent=2))
        return 1 if unavailable else 0
    if unavailable:
        return 1
    if snap.replayed:
        print(f"(replayed from {args.replay})")
    rows = [("GPU", "NAME", "UTIL", "MEMORY", "POWER", "TEMP", "PROCESSES")]
    for g in snap.gpus:
        procs = []
        for p in snap.processes_on(g.index):
            who = owners.get(p.pid) or f"pid {p.pid}"
            procs.append(f"{who} ({fmt.size(p.used_memory_bytes)})")
        rows.append(
            (
                str(g.index),
                g.name,
                fmt.percent(g.utilization_gpu_percent),
                f"{fmt.size(g.memory_used_bytes)} / {fmt.size(g.memory_total_bytes)}",
                fmt.watts(g.power_w, g.power_limit_w),
                fmt.celsius(g.temperature_c),
                ", ".join(procs) or fmt.NONE,
            )
        )
        if g.error:
            rows.append(("", f"  {g.error}", "", "", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
