"""``gpuconsole logs NAME``: a container's output, byte for byte, as ``docker logs`` gives it.

Frames the container wrote to stdout go to our stdout and its stderr frames to our stderr,
unchanged (no decoding, no added newline), so ``gpuconsole logs x > out`` equals what the
container wrote. Output is flushed whenever everything that has arrived is written and the next
read may wait (a follow shows each line as it comes), never per frame (a million-line log goes
out in a few thousand writes). Ctrl-C ends it quietly (130); a reader that goes away
(``| head``) ends it quietly too (141).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any, BinaryIO

from gpuconsole.cli.common import add_host_option, close_all, open_for

if TYPE_CHECKING:
    from gpuconsole.backend.docker.logs import ContainerLogs, LogChunk
    from gpuconsole.settings.config import Settings

COMMANDS: frozenset[str] = frozenset({"logs"})

#: Exit status when the reader of our output went away, as a tool killed by SIGPIPE (128 + 13).
BROKEN_PIPE = 141


def _tail(text: str) -> int | None:
    from gpuconsole.backend.docker.logs import parse_tail

    try:
        return parse_tail(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--tail ")) from None


def _since(text: str) -> float:
    from gpuconsole.backend.docker.logs import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--since ")) from None


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "logs",
        help="a container's output (stdout and stderr apart, byte for byte), optionally followed",
        description="Writes what the container wrote: its stdout to stdout, its stderr to "
        "stderr, unchanged. With -f, goes on until the container exits (then exits 0) or "
        "ctrl+c.",
    )
    p.add_argument("name", metavar="NAME", help="container name or id")
    p.add_argument(
        "-f", "--follow", action="store_true", help="keep writing new output until it exits"
    )
    p.add_argument(
        "-n",
        "--tail",
        metavar="N",
        type=_tail,
        default=None,
        help="only the last N lines ('all', the default: everything)",
    )
    p.add_argument(
        "--since",
        metavar="T",
        type=_since,
        default=None,
        help="only output after T: a duration before now (90s, 10m, 1h30m), a date "
        "(2026-11-27, 2026-11-27T10:00:00) or a unix time",
    )
    p.add_argument(
        "-t",
        "--timestamps",
        action="store_true",
        help="prefix every line with the engine's RFC 3339 timestamp",
    )
    add_host_option(p)


class _Writer:
    """Writes each chunk to its stream, keeping the order across the two streams: before
    writing to one, what is buffered for the other is flushed (as a terminal shows them).
    Flushed too whenever the reader is about to wait for the engine: at once when a follow is
    idle, once per read from the connection in a bulk read (a few thousand writes for a
    million lines, where ``docker logs`` makes a write per line)."""

    def __init__(self, out: BinaryIO, err: BinaryIO) -> None:
        self.streams = {"stdout": out, "stderr": err}
        self.dirty: BinaryIO | None = None

    def write(self, chunk: LogChunk) -> None:
        stream = self.streams[chunk.stream]
        if self.dirty is not stream:
            self.flush()
            self.dirty = stream
        stream.write(chunk.data)

    def flush(self) -> None:
        if self.dirty is not None:
            self.dirty.flush()
            self.dirty = None


def copy_logs(logs: ContainerLogs, out: BinaryIO, err: BinaryIO) -> None:
    """Write every chunk of ``logs`` to ``out`` / ``err`` until the engine ends the body;
    raises what ended the read otherwise (a dropped connection, a closed pipe)."""
    writer = _Writer(out, err)
    try:
        for chunk in logs.blocks(before_wait=writer.flush):
            writer.write(chunk)
        writer.flush()
    finally:
        logs.close()


def _quiet_broken_pipe() -> int:
    """Our reader went away: point both streams at /dev/null so that the interpreter's own
    flush at exit has nowhere to fail, and exit as a tool killed by SIGPIPE would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
    return BROKEN_PIPE


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuconsole.backend.docker.logs import open_logs
    from gpuconsole.backend.errors import GpuconsoleError

    hosts = open_for(settings, args)
    try:
        (host,) = hosts
        logs = open_logs(
            host.engine,
            args.name,
            follow=args.follow,
            tail=args.tail,
            since=args.since,
            timestamps=args.timestamps,
        )
        try:
            copy_logs(logs, sys.stdout.buffer, sys.stderr.buffer)
        except BrokenPipeError:
            return _quiet_broken_pipe()
        except GpuconsoleError:
            raise
        except Exception as exc:
            raise GpuconsoleError(
                f"the logs of {args.name!r} on {host.name!r} broke off: {exc or type(exc).__name__}"
            ) from None
        if args.follow:
            # A follow ends when the container exits — or when the engine went away under it,
            # which must not read as a clean end.
            end = logs.end()
            if end.error or end.running:
                why = end.error or "the container still runs"
                raise GpuconsoleError(
                    f"the logs of {args.name!r} on {host.name!r} broke off before the container "
                    f"exited: {why}"
                )
        return 0
    finally:
        close_all(hosts)


__all__ = ["COMMANDS", "add_parsers", "copy_logs", "run"]
