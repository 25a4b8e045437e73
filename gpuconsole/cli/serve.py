"""``gpuconsole serve``: the console in a browser, one console process per tab, behind a token.

The first line on stdout is the URL with its token (as Jupyter prints it), so a script can read
it; everything else goes to stderr. The options of the console itself (``--config``,
``--read-only``, ``--host``, ``--gpu-replay``…) are handed to every tab's console.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuconsole.cli.common import err

if TYPE_CHECKING:
    import ssl

    from gpuconsole.settings.config import Settings

COMMANDS: frozenset[str] = frozenset({"serve"})

DEFAULT_PORT = 8877
DEFAULT_MAX_SESSIONS = 4


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number — e.g. 8877") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..65535 (0 picks a free port)")
    return value


def _sessions(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number — e.g. 4") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..64")
    return value


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the console to a browser (127.0.0.1 and a token by default)",
        description="Serves the full console to a browser: each tab gets its own console with "
        "the same hosts and config. Prints the URL with its token as the first line. Bound to "
        "127.0.0.1 unless --bind says otherwise: from another machine, reach it with "
        "ssh -L 8877:127.0.0.1:8877 HOST and open the printed URL there.",
    )
    p.add_argument(
        "--bind",
        metavar="ADDRESS",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; anything else is reachable from the "
        "network, without TLS — prefer ssh -L)",
    )
    p.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0 picks one"
    )
    p.add_argument(
        "--max-sessions",
        type=_sessions,
        default=DEFAULT_MAX_SESSIONS,
        metavar="N",
        help=f"browser tabs with a console at once (default {DEFAULT_MAX_SESSIONS}; each is a "
        "console process with its own connections to the hosts)",
    )
    p.add_argument(
        "--tls-cert",
        metavar="PEM",
        type=Path,
        help="serve HTTPS with this certificate (chain) — for --bind beyond loopback",
    )
    p.add_argument("--tls-key", metavar="PEM", type=Path, help="the certificate's private key")
    # The console's own options, also accepted after `serve` (SUPPRESS: absent here, the
    # value given before `serve` stays).
    p.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")
    p.add_argument(
        "--read-only",
        action="store_true",
        default=argparse.SUPPRESS,
        help="serve the read-only console (no start/stop/remove/launch/shell)",
    )
    p.add_argument("--host", metavar="NAME", default=argparse.SUPPRESS, help="only this host")
    p.add_argument(
        "--gpu-replay",
        metavar="FILE",
        type=Path,
        default=argparse.SUPPRESS,
        help="show a recorded GPU JSONL instead of the first host's GPUs",
    )


def console_argv(args: argparse.Namespace, settings: Settings) -> list[str]:
    """How each tab's console is started: this Python, this gpuconsole, the same options.

    Paths are made absolute (the console may not share our working directory's meaning later)
    and the config is the file this server loaded."""
    argv = [sys.executable, "-m", "gpuconsole"]
    if settings.path is not None and settings.path.exists():
        argv += ["--config", str(settings.path.resolve())]
    if args.docker_host:
        argv += ["--docker-host", args.docker_host]
    if args.host:
        argv += ["--host", args.host]
    if args.read_only:
        argv.append("--read-only")
    if args.accept_new_host_key:
        argv.append("--accept-new-host-key")
    if args.gpu_replay:
        argv += ["--gpu-replay", str(Path(args.gpu_replay).resolve())]
    if args.gpu_interval is not None:
        argv += ["--gpu-interval", str(args.gpu_interval)]
    return argv


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def url_for(bind: str, port: int, token: str, scheme: str = "http") -> str:
    """The URL to print: the bound address, or this machine's name for a wildcard bind."""
    host = bind
    if bind in ("0.0.0.0", "::", ""):
        import socket

        host = socket.gethostname()
    elif ":" in bind:
        host = f"[{bind}]"
    return f"{scheme}://{host}:{port}/?token={token}"


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """An HTTPS context from --tls-cert/--tls-key, or None; raises ValueError naming the fix."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key go together — give both PEM files")
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"cannot use --tls-cert {cert} / --tls-key {key}: {exc} — give a PEM certificate "
            "and its unencrypted private key"
        ) from None
    return context


def run(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from gpuconsole.web.auth import Gate, new_token
    from gpuconsole.web.server import ServeConfig, serve

    if args.gpu_replay and not Path(args.gpu_replay).is_file():
        err(f"--gpu-replay: {args.gpu_replay} is not a file — give a recorded GPU JSONL")
        return 2
    try:
        tls = tls_context(args.tls_cert, args.tls_key)
    except ValueError as exc:
        err(str(exc))
        return 2
    if not is_loopback(args.bind):
        err(
            f"warning: serving on {args.bind}: anyone who can reach port {args.port} there and "
            "holds the token controls these containers"
            + (", over plain HTTP (--tls-cert/--tls-key serve HTTPS)" if tls is None else "")
            + ". Prefer the default (127.0.0.1) and ssh -L."
        )
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s serve: %(message)s",
        datefmt="%H:%M:%S",
    )
    token = new_token()

    def config_for(port: int) -> ServeConfig:
        return ServeConfig(
            console_argv=tuple(console_argv(args, settings)),
            gate=Gate(token=token, cookie_name=f"gpuconsole-{port}", secure=tls is not None),
            max_sessions=args.max_sessions,
            title="gpuconsole" + (" (read-only)" if args.read_only else ""),
        )

    def ready(port: int) -> None:
        print(url_for(args.bind, port, token, "https" if tls else "http"), flush=True)
        err(f"serving the console on {args.bind}:{port}; ctrl+c stops it")

    try:
        serve(config_for, args.bind, args.port, ready, tls)
    except OSError as exc:
        err(
            f"cannot listen on {args.bind}:{args.port}: {exc.strerror or exc} — pick another "
            "--port (0 picks a free one) or --bind address"
        )
        return 1
    return 0
