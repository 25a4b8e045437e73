"""``gpuconsole ps`` and the container actions (start, stop, restart, rm) on one or all hosts.

``ps --all-hosts`` asks every host at once: rows of the hosts that answered go to stdout, each
host that did not is named on stderr with its reason, and the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from gpuconsole.cli.common import add_host_option, close_all, each_host, err, open_for, print_table

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.settings.config import Settings

COMMANDS: frozenset[str] = frozenset({"ps", "start", "stop", "restart", "rm"})
MUTATING: frozenset[str] = frozenset({"start", "stop", "restart", "rm"})


def add_parsers(sub: Any) -> None:
    ps = sub.add_parser("ps", help="list containers with CPU, memory and GPU requests")
    ps.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    ps.add_argument("--json", action="store_true", help="machine-readable output")
    add_host_option(ps, all_hosts=True)
    for name, text in (
        ("start", "start containers"),
        ("stop", "stop containers"),
        ("restart", "restart containers"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("names", nargs="+", metavar="NAME", help="container name or id")
        add_host_option(p)
        if name != "start":
            p.add_argument(
                "-t", "--time", type=int, default=10, help="seconds to wait before killing"
            )
    rm = sub.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="also remove running containers")
    rm.add_argument("names", nargs="+", metavar="NAME", help="container name or id")
    add_host_option(rm)


def ps_rows(host: Host, show_all: bool) -> list[dict[str, Any]]:
    """One host's containers with a measured CPU % (a 1 s window, as ``docker stats``)."""
    from gpuconsole.present import format as fmt

    engine = host.engine
    prime = getattr(engine, "prime_stats", None)
    if prime is not None:
        prime()
    # Imported once the CPU window runs (they cost ~20 ms; the window waits anyway).
    from concurrent.futures import ThreadPoolExecutor

    containers = engine.list_containers(all=show_all)
    running = [c.id for c in containers if c.running]
    measure = getattr(engine, "measured_stats", None)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The GPU requests (one inspect per new container) are asked for during the 1 s CPU
        # window, not after it.
        pending = pool.submit(engine.gpu_requests, [c.id for c in containers])
        stats = (measure(running) if measure else engine.stats(running)) if running else {}
        gpus = pending.result() if containers else {}
    rows = []
    for c in containers:
        s = stats.get(c.id)
        rows.append(
            {
                "host": c.host,
                "id": c.id,
                "name": c.name,
                "image": c.image,
                "state": c.state,
                "status": c.status,
                "variant": c.variant,
                "gpus": fmt.gpus_json(gpus.get(c.id)),
                "cpu_percent": None
                if s is None or s.cpu_percent is None
                else round(s.cpu_percent, 2),
                "memory_bytes": s.memory_bytes if s else None,
                "memory_limit_bytes": s.memory_limit_bytes if s else None,
                "ports": [
                    {
                        "host_ip": p.host_ip,
                        "host_port": p.host_port,
                        "container_port": p.private_port,
                        "protocol": p.protocol,
                    }
                    for p in c.ports
                ],
                "_summary": c,
                "_gpu": gpus.get(c.id),
            }
        )
    return rows


def _cmd_ps(hosts: list[Host], args: argparse.Namespace) -> int:
    from gpuconsole.backend.errors import GpuconsoleError
    from gpuconsole.present import format as fmt

    results = each_host(hosts, lambda h: ps_rows(h, args.all))
    rows: list[dict[str, Any]] = []
    status = 0
    for host, result in zip(hosts, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, GpuconsoleError):
                result = GpuconsoleError(f"{type(result).__name__}: {result}")
            err(f"{host.name}: {result}")
            status = 1
            continue
        rows.extend(result)
    if args.json:
        import json

        print(
            json.dumps(
                [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows], indent=2
            )
        )
        return status
    if status and not rows and all(isinstance(r, BaseException) for r in results):
        return status  # no host answered: a header over nothing would read as "no containers"
    several = len(hosts) > 1
    header = (
        *(("HOST",) if several else ()),
        "CONTAINER ID",
        "NAME",
        "IMAGE",
        "STATUS",
        "CPU %",
        "MEM USAGE / LIMIT",
        "GPUS",
        "VARIANT",
        "PORTS",
    )
    table: list[tuple[str, ...]] = [header]
    for r in rows:
        c = r["_summary"]
        table.append(
            (
                *((c.host,) if several else ()),
                c.short_id,
                c.name,
                fmt.image(c.image),
                c.status,
                fmt.cpu_percent(r["cpu_percent"], c.running),
                fmt.memory(r["memory_bytes"], r["memory_limit_bytes"], c.running),
                fmt.gpus(r["_gpu"]),
                fmt.variant(c),
                fmt.ports(c.ports),
            )
        )
    print_table(table)
    return status


def _cmd_action(host: Host, args: argparse.Namespace) -> int:
    from gpuconsole.backend.errors import GpuconsoleError, HostUnreachable

    engine = host.engine
    status = 0
    for name in args.names:
        try:
            if args.command == "start":
                engine.start(name)
            elif args.command == "stop":
                engine.stop(name, timeout=args.time)
            elif args.command == "restart":
                engine.restart(name, timeout=args.time)
            else:
                engine.remove(name, force=args.force)
        except HostUnreachable:
            raise
        except GpuconsoleError as exc:
            err(str(exc))
            status = 1
            continue
        print(name)
    return status


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command in MUTATING and (args.read_only or settings.read_only):
        err(f"read-only mode: {args.command!r} is disabled (drop --read-only)")
        return 1
    hosts = open_for(settings, args)
    try:
        if args.command == "ps":
            return _cmd_ps(hosts, args)
        return _cmd_action(hosts[0], args)
    finally:
        close_all(hosts)
