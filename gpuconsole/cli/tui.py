"""Run the full-screen console over the configured hosts."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gpuconsole.cli.common import err, host_specs

if TYPE_CHECKING:
    from gpuconsole.settings.config import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses

    from gpuconsole.backend.gpu import ReplayError
    from gpuconsole.backend.hosts.open import open_hosts
    from gpuconsole.ui.app import GpuconsoleApp

    interval = args.gpu_interval if args.gpu_interval is not None else settings.gpu_interval
    args.all_hosts = not args.host
    specs = host_specs(settings, args)
    options = settings.ssh
    if args.accept_new_host_key:
        options = dataclasses.replace(options, accept_new_host_key=True)
    try:
        hosts = open_hosts(
            specs,
            options,
            gpu_replay=args.gpu_replay,
            gpu_interval=interval,
            on_unknown_key=None,  # the app installs its own prompt
            # Each host's GPU loop (a thread per host, sampling once a second) reads its SSH
            # host's nvidia-smi stream itself and asks for the process list on one session
            # kept open: no reader thread per host woken by every round of readings, no
            # command per process list (as ``gpuconsole record`` does).
            gpu_read_in_sample=True,
        )
    except ReplayError as exc:
        err(f"--gpu-replay: {exc}")
        return 1
    # A replay that left bad lines out says so once (the GPU screens say it on every sample).
    notes = tuple(
        f"--gpu-replay {args.gpu_replay}: {note}"
        for host in hosts
        if (note := getattr(host.gpu, "note", None))
    )
    app = GpuconsoleApp(
        hosts,
        read_only=args.read_only or settings.read_only,
        refresh_seconds=settings.refresh_seconds,
        show_all=settings.show_all,
        gpu_interval=interval,
        replay_name=args.gpu_replay.name if args.gpu_replay else None,
        config_path=settings.path,
        warnings=(*settings.warnings, *settings.host_errors, *notes),
        shell_command=settings.shell,
        alerts=settings.alerts,
    )
    app.run()
    return app.return_code or 0
