"""``gpuconsole hosts`` (every host's state) and ``gpuconsole tunnel`` (a local URL for a launch
on a remote host, held open until interrupted)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from gpuconsole.cli.common import (
    add_host_option,
    close_all,
    each_host,
    err,
    one_host,
    open_for,
    print_table,
)

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.backend.hosts.spec import HostSpec
    from gpuconsole.settings.config import Settings

COMMANDS: frozenset[str] = frozenset({"hosts", "tunnel"})


def add_parsers(sub: Any) -> None:
    h = sub.add_parser(
        "hosts", help="every configured host: state, latency, engine version, GPU count"
    )
    h.add_argument("--json", action="store_true", help="machine-readable output")
    t = sub.add_parser(
        "tunnel",
        help="a local URL for a container's published port on a remote host (held until ^C)",
        description="Forwards a free local 127.0.0.1 port to the container's published port on "
        "the host's loopback, through the host's SSH connection, and prints the local URL (with "
        "the token for a Jupyter launch) as the first line. Ends when interrupted or when the "
        "container stops.",
    )
    t.add_argument("name", metavar="NAME", help="container name or id")
    t.add_argument(
        "--local-port", type=int, default=0, metavar="P", help="local port (default: free)"
    )
    t.add_argument(
        "--port",
        type=int,
        default=0,
        metavar="P",
        help="the published port to reach (default: the launch's, else the first published one)",
    )
    add_host_option(t)


def host_row(
    spec: HostSpec, address: str, state: str = "down", error: str | None = None
) -> dict[str, Any]:
    """A ``hosts`` line before anything is known beyond the config."""
    return {
        "name": spec.name,
        "address": spec.ssh or address,
        "kind": "local" if spec.is_local else "ssh",
        "origin": spec.origin,
        "state": state,
        "latency_ms": None,
        "engine_version": None,
        "gpus": None,
        "error": error,
    }


def _probe(host: Host) -> dict[str, Any]:
    """One host's line: connect (with its latency), ask the engine, count the GPUs."""
    from gpuconsole.backend.errors import GpuconsoleError
    from gpuconsole.backend.models import EngineState
    from gpuconsole.cli.gpus import first_sample

    row = host_row(host.spec, host.address)
    status = host.engine.status()  # connects (SSH login, API version) on first use
    link = getattr(host.machine, "status", None)
    if status.state is EngineState.UP:
        # Latency: one engine ping over the established connection (the round trip every
        # refresh pays), not the connection set-up.
        started = time.monotonic()
        status = host.engine.status()
        row["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    if status.state is EngineState.UP:
        row["state"] = "up"
        row["engine_version"] = status.engine_version
        row["api"] = getattr(host.engine, "route", None)
    else:
        state = getattr(link, "state", None)
        row["state"] = str(getattr(state, "value", "down")) if state is not None else "down"
        row["error"] = status.error
    if host.gpu is not None and row["state"] == "up":
        try:
            snap = first_sample(host.gpu)
        except GpuconsoleError as exc:
            row["gpu_error"] = str(exc)
        else:
            row["gpus"] = len(snap.gpus)
            if snap.error and not snap.gpus:
                row["gpu_error"] = snap.error
    return row


def _cmd_hosts(args: argparse.Namespace, settings: Settings) -> int:
    args.all_hosts = True
    hosts = open_for(settings, args, gpus=True)
    try:
        results = each_host(hosts, _probe)
    finally:
        close_all(hosts)
    rows: list[dict[str, Any]] = []
    for host, result in zip(hosts, results, strict=True):
        if isinstance(result, BaseException):
            rows.append(host_row(host.spec, host.address, error=str(result)))
        else:
            rows.append(result)
    for spec in settings.hosts:
        if not spec.enabled:
            rows.append(host_row(spec, "this machine", state="disabled"))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        from gpuconsole.present import format as fmt

        table = [("NAME", "ADDRESS", "STATE", "LATENCY", "ENGINE", "GPUS", "NOTE")]
        for r in rows:
            table.append(
                (
                    r["name"],
                    r["address"],
                    r["state"],
                    f"{r['latency_ms']:.0f} ms" if r["latency_ms"] is not None else fmt.NONE,
                    r["engine_version"] or fmt.NONE,
                    str(r["gpus"]) if r["gpus"] is not None else fmt.NONE,
                    r.get("error") or r.get("gpu_error") or "",
                )
            )
        print_table(table)
    for problem in settings.host_errors:
        err(problem)
    return 0 if all(r["state"] in ("up", "disabled") for r in rows) else 1


def tunnel_target(host: Host, ref: str, port: int = 0) -> tuple[int, str | None, str]:
    """(remote port, token, variant) of a container's published port on ``host``."""
    from gpuconsole.backend.errors import GpuconsoleError
    from gpuconsole.backend.launch import describe_launch

    launch = describe_launch(host.engine, ref)
    published = [p for p in launch.ports if p.host_port]
    if port:
        if not any(p.host_port == port for p in published):
            have = ", ".join(str(p.host_port) for p in published) or "none"
            raise GpuconsoleError(
                f"{launch.name} does not publish port {port} on {host.name} (it publishes: "
                f"{have}) — pick one of those"
            )
        return port, launch.token, launch.variant
    if launch.variant in ("jupyter", "ssh"):
        from gpuconsole.backend.launch.spec import LABEL_PORT

        details = host.engine.inspect(ref)
        label = dict(details.labels).get(LABEL_PORT)
        if label and label.isdigit():
            return int(label), launch.token, launch.variant
    if not published:
        raise GpuconsoleError(
            f"{launch.name} publishes no port on {host.name} — nothing to tunnel to"
        )
    first = published[0].host_port
    assert first is not None
    return first, launch.token, launch.variant


def _cmd_tunnel(args: argparse.Namespace, settings: Settings) -> int:
    from gpuconsole.backend.errors import GpuconsoleError

    host = one_host(settings, args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        remote_port, token, variant = tunnel_target(host, args.name, args.port)
        if host.is_local:
            local_port = remote_port
            err(f"{host.name} is this computer: the port is already local, no tunnel needed")
        else:
            tunnel = host.tunnels.open(args.name, remote_port, local_port=args.local_port)
            local_port = tunnel.local_port
        if variant == "jupyter" and token:
            print(f"http://127.0.0.1:{local_port}/?token={token}", flush=True)
        elif variant == "ssh":
            print(f"ssh -p {local_port} aiuser@127.0.0.1", flush=True)
        else:
            print(f"127.0.0.1:{local_port}", flush=True)
        err(
            f"forwarding 127.0.0.1:{local_port} to {args.name} on {host.name} "
            f"(its port {remote_port}); ctrl+c ends it"
        )
        while not stop.wait(2.0):
            try:
                if not host.engine.inspect(args.name).summary.running:
                    err(f"{args.name} stopped; tunnel closed")
                    return 0
            except GpuconsoleError as exc:
                err(f"{exc}; tunnel closed")
                return 1
        return 0
    finally:
        host.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "hosts":
        return _cmd_hosts(args, settings)
    return _cmd_tunnel(args, settings)


__all__ = ["add_parsers", "run", "sys"]
