"""``gpuconsole record`` (the recorder) and ``gpuconsole usage`` (reports from its recording).

``record`` runs in the foreground until SIGINT/SIGTERM (a systemd user service runs it as is),
printing one line when it starts and one when it stops; problems with a host are logged once per
change on stderr. ``usage`` reads the same file while the recorder writes it.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from gpuconsole.cli.common import add_host_option, err, print_table, seconds_arg

if TYPE_CHECKING:
    from gpuconsole.settings.config import Settings

COMMANDS: frozenset[str] = frozenset({"record", "usage"})


def _metrics(text: str) -> tuple[str, int]:
    from gpuconsole.accounting.metrics import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _since(text: str) -> float:
    from gpuconsole.accounting.report import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parsers(sub: Any) -> None:
    r = sub.add_parser(
        "record",
        help="record GPU use per GPU and per container into SQLite (until ctrl+c / SIGTERM)",
        description="Samples the GPUs of the chosen hosts and stores, per interval, each GPU's "
        "energy, utilization, memory and power and each container's share (shared GPUs split by "
        "used memory), plus reserved GPU time. Full resolution for 24 h, then one row a minute "
        "for 90 days. One recorder per file.",
    )
    add_host_option(r, all_hosts=True)
    r.add_argument(
        "--db",
        metavar="PATH",
        help="recording file (default: $GPUCONSOLE_DB, else usage.sqlite in the platform data dir)",
    )
    r.add_argument(
        "--interval",
        type=seconds_arg,
        default=1.0,
        metavar="SECONDS",
        help="sampling interval (default 1)",
    )
    r.add_argument(
        "--metrics",
        type=_metrics,
        metavar="ADDR",
        help="serve Prometheus /metrics on [ADDRESS:]PORT (a bare port: 127.0.0.1)",
    )

    u = sub.add_parser(
        "usage",
        help="GPU use per container, image, host or GPU from a recording",
        description="Sums a recording over a time window. Shared GPUs are split by used memory "
        "share; idle reserved time is time a container held a reserved GPU with nothing of its "
        "own running on it or the GPU under 5 %% utilization.",
    )
    u.add_argument("--db", metavar="PATH", help="recording file (default as for record)")
    u.add_argument(
        "--since",
        type=_since,
        metavar="WHEN",
        default=None,
        help="24h, 7d, 90m or a date/time (default: 24h)",
    )
    u.add_argument("--host", metavar="NAME", default=argparse.SUPPRESS, help="only this host")
    u.add_argument("--by", choices=("container", "image", "host", "gpu"), default="container")
    fmt = u.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON list of rows")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header line")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "record":
        return record(args, settings)
    return usage(args)


def record(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    import threading

    from gpuconsole.accounting.live import LiveFigures
    from gpuconsole.accounting.recorder import Recorder
    from gpuconsole.accounting.store import Writer, recording_path
    from gpuconsole.backend.gpu import ReplayError
    from gpuconsole.backend.hosts.open import open_hosts
    from gpuconsole.cli.common import close_all, host_specs

    path = recording_path(args.db)
    writer = Writer(path)  # refuses (RecordingError) before any host is touched
    hosts = []
    server = None
    try:
        import dataclasses

        # Nobody sees a host's latency here: a host whose stream brings readings is not probed.
        options = dataclasses.replace(settings.ssh, latency_probes=False)
        if args.accept_new_host_key:
            options = dataclasses.replace(options, accept_new_host_key=True)
        try:
            hosts = open_hosts(
                host_specs(settings, args),
                options,
                gpus=True,
                gpu_replay=args.gpu_replay,
                gpu_interval=args.interval,
                on_unknown_key=None,
                # The round reads every host's stream in turn: no reader thread per host.
                gpu_read_in_sample=True,
            )
        except ReplayError as exc:
            err(f"--gpu-replay: {exc}")
            return 1
        live = None
        metrics_note = ""
        if args.metrics:
            live = LiveFigures()
            from gpuconsole.accounting.metrics import serve_metrics

            bind, port = args.metrics
            try:
                server, port = serve_metrics(live, bind, port)
            except OSError as exc:
                err(f"--metrics {bind}:{port}: {exc.strerror or exc} — pick another port")
                return 1
            metrics_note = f"; metrics on http://{bind}:{port}/metrics"
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        import logging

        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(message)s",
            datefmt="%Y-%m-%d %H:%M:%S",
        )
        recorder = Recorder(
            hosts, writer, interval=args.interval, live=live, alerts=settings.alerts
        )
        names = ", ".join(h.name for h in hosts)
        print(f"recording {names} every {args.interval:g} s into {path}{metrics_note}", flush=True)
        recorder.run(stop)
        s = recorder.stats
        print(
            f"stopped: {s.rounds} samples, {s.gpu_rows} GPU intervals and {s.owner_rows} "
            f"container intervals written to {path}",
            flush=True,
        )
        return 0
    finally:
        if server is not None:
            server.shutdown()
        writer.close()
        close_all(hosts)


def usage(args: argparse.Namespace) -> int:
    import csv
    import json
    import time

    from gpuconsole.accounting.meter import SPLIT_RULE
    from gpuconsole.accounting.report import first_recorded, iso, table_rows
    from gpuconsole.accounting.report import usage as report
    from gpuconsole.accounting.store import open_for_reading, recording_path

    path = recording_path(args.db)
    db = open_for_reading(path)  # NoRecording: says so, exit 1
    try:
        since = args.since if args.since is not None else time.time() - 86400
        rows = report(db, since=since, by=args.by, host=getattr(args, "host", None))
        first = first_recorded(db)
    finally:
        db.close()
    if args.json:
        json.dump([r.as_json() for r in rows], sys.stdout, indent=2)
        print()
    elif args.csv:
        fields = (
            list(rows[0].as_json())
            if rows
            else [
                "host",
                "container",
                "image",
                "gpus",
                "gpu_seconds",
                "energy_wh",
                "mean_utilization_percent",
                "peak_memory_bytes",
                "reserved_gpu_seconds",
                "idle_reserved_gpu_seconds",
                "first_seen",
                "last_seen",
                "container_id",
            ]
        )
        out = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        out.writeheader()
        for r in rows:
            row = r.as_json()
            row["gpus"] = " ".join(r.gpus)
            out.writerow(row)
    elif rows:
        print_table(table_rows(rows, args.by))
    if first is None:
        err(f"the recording {path} holds no GPU samples yet — is `gpuconsole record` running?")
    elif not rows:
        err(f"nothing recorded since {iso(since)} (the recording starts {iso(first)})")
    if rows and args.by != "gpu":
        err(f"shared GPUs: {SPLIT_RULE}")
    return 0
