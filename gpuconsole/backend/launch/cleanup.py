"""Nothing half-launched is left behind, even when the engine fails in the middle of a launch.

A launch removes its container again on any failure (launcher.py). When the engine itself goes
away under it — killed, restarted, frozen — that removal may be impossible at that moment, so:

- the removal is tried again for a bounded time: an engine that restarts (systemd, a crash
  loop) is usually back within seconds. A hung engine is tried once: each try would cost the
  engine's whole timeout;
- a create whose answer was lost (the engine died while answering) is looked up by the name it
  asked for and its launch label, so a container whose id the launcher never learned is removed
  too;
- every container a launch (or a build's probe) creates carries ``LABEL_LAUNCH``, naming the
  process that made it. A launched container still ``created`` (never started) whose launch is
  over — its process is gone, or this process finished that launch — or, made on another
  machine, older than ``ABANDONED_AFTER_S``, is a leftover: the next launch or build on that host
  removes it and says so, and the console may call ``remove_abandoned`` for each host it opens.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.docker.errors_map import unreachable
from gpuconsole.backend.docker.host import EngineCall, engine_api
from gpuconsole.backend.errors import ContainerNotFound, GpuconsoleError, HostUnreachable
from gpuconsole.backend.launch.spec import LABEL_LAUNCH, LABEL_VARIANT

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import DockerHost

#: How long a failed launch or build keeps trying to remove what it made while the engine is
#: away (refused connections: stopped, or restarting).
CLEANUP_WAIT_S = 10.0

#: A never-started launch container made on another machine is left alone this long: no live
#: launch keeps a container created-but-not-started for more than the engine's timeout.
ABANDONED_AFTER_S = 120.0

#: The label of a build's probe container (build_variant.probe_base).
LABEL_PROBE = "gpuconsole.probe"

#: Launch tags of this process whose launch (or probe) is still in progress.
_active: set[str] = set()
_active_lock = threading.Lock()


def _start_ticks(pid: int | str) -> str | None:
    """When the process started (clock ticks since boot), to tell a reused PID apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner() -> str:
    """This process: ``hostname/pid/start``."""
    return f"{socket.gethostname()}/{os.getpid()}/{_start_ticks('self') or '-'}"


def new_tag() -> str:
    """A label value for one launch attempt (or probe): this process plus a nonce."""
    return f"{owner()}/{secrets.token_hex(6)}"


class Active:
    """``with Active(tag):`` while the launch (or probe) with ``tag`` is in progress."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __enter__(self) -> str:
        with _active_lock:
            _active.add(self.tag)
        return self.tag

    def __exit__(self, *exc: object) -> None:
        with _active_lock:
            _active.discard(self.tag)


def launch_over(tag: str) -> bool | None:
    """Is the launch that made a container with this tag over? None: cannot tell from here
    (another machine, or no /proc)."""
    maker, _, _nonce = tag.rpartition("/")
    host, _, rest = maker.partition("/")
    pid, _, start = rest.partition("/")
    if maker == owner():
        with _active_lock:
            return tag not in _active
    if host != socket.gethostname() or not pid.isdigit() or start in ("", "-"):
        return None
    if not os.path.isdir("/proc/self"):
        return None
    try:
        os.kill(int(pid), 0)  # unlike /proc, sees every user's processes (hidepid)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # someone else's process
    except OSError:
        return None
    ticks = _start_ticks(pid)
    # A process by that PID runs: the maker, unless it started at another time (a PID reused).
    return ticks is not None and ticks != start


def engine_hung(exc: BaseException) -> bool:
    """Did the engine time out (frozen or overloaded), rather than refuse or drop us?"""
    timed_out = getattr(exc, "timed_out", None)
    if isinstance(timed_out, bool):
        return timed_out
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError) or "Timeout" in type(current).__name__:
            return True
        current = current.__cause__ or current.__context__
    return "did not answer within" in str(exc)


def remove_container(
    api: Any,
    call: EngineCall,
    ref: str,
    wait_s: float = CLEANUP_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> GpuconsoleError | None:
    """Remove ``ref`` (forced, with its anonymous volumes), trying again while the engine is
    away for up to ``wait_s``. None when it is gone; else the last error."""
    deadline = time.monotonic() + wait_s
    delay = 0.25
    while True:
        try:
            with call(ref, "remove"):
                api.remove_container(ref, force=True, v=True)
            return None
        except ContainerNotFound:
            return None
        except GpuconsoleError as exc:
            if getattr(exc, "status", None) == 404:
                return None
            if isinstance(exc, HostUnreachable) and engine_hung(exc):
                return exc
            if time.monotonic() + delay > deadline:
                return exc
        sleep(delay)
        delay = min(delay * 2, 2.0)


def find_launched(api: Any, call: EngineCall, name: str, tag: str) -> str | None:
    """The id of the container ``name`` if this launch attempt (``tag``) made it."""
    with call(name, "list"):
        found = api.containers(
            all=True, filters={"name": f"^/{name}$", "label": f"{LABEL_LAUNCH}={tag}"}
        )
    return str(found[0]["Id"]) if found else None


def _abandoned(entry: dict[str, Any], now: float) -> bool:
    labels = entry.get("Labels") or {}
    tag = labels.get(LABEL_LAUNCH)
    if not tag:
        return False
    state = str(entry.get("State", ""))
    if LABEL_PROBE in labels:
        pass  # a probe is throwaway in any state
    elif LABEL_VARIANT not in labels or state != "created":
        return False  # started at least once: a launch that came up, not a leftover
    over = launch_over(str(tag))
    if over is None:
        return now - float(entry.get("Created") or now) > ABANDONED_AFTER_S
    return over


def _name(entry: dict[str, Any]) -> str:
    names = entry.get("Names") or []
    return str(names[0]).lstrip("/") if names else str(entry.get("Id", ""))[:12]


def remove_abandoned(
    host: DockerHost, now: float | None = None, *, strict: bool = False
) -> list[str]:
    """Remove the containers failed launches and builds left on ``host`` (see the module's
    docstring); one line per container removed, for people. Never raises, unless ``strict``
    and the engine cannot be reached (a launch then fails at once rather than after asking it
    again); otherwise a host that cannot be asked now is asked again next time."""
    notes: list[str] = []
    try:
        api, call = engine_api(host)
        with call(None, "list"):
            entries = api.containers(all=True, filters={"label": LABEL_LAUNCH})
    except HostUnreachable:
        if strict:
            raise
        return notes
    except GpuconsoleError:
        return notes
    when = time.time() if now is None else now
    for entry in entries:
        if not _abandoned(entry, when):
            continue
        cid = str(entry.get("Id", ""))
        if remove_container(api, call, cid, wait_s=0) is not None:
            continue
        what = (
            "a build's probe container"
            if LABEL_PROBE in (entry.get("Labels") or {})
            else "created and never started by a launch that failed when the engine went away"
        )
        notes.append(f"removed {_name(entry)} ({cid[:12]}) on {host.name}: {what}")
    return notes


@contextlib.contextmanager
def stream_errors(host: DockerHost, what: str) -> Iterator[None]:
    """Reading a long response (a build's or a pull's progress): the engine dying mid-way
    surfaces from urllib3 or http.client, which the engine call's own mapping does not know.
    Turn it into HostUnreachable saying what happened."""
    import http.client

    import requests.exceptions
    import urllib3.exceptions

    try:
        yield
    except (
        urllib3.exceptions.HTTPError,
        http.client.HTTPException,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ConnectionError,
        ConnectionError,
    ) as exc:
        timeout = float(getattr(host, "timeout", 10))
        if engine_hung(exc):
            raise unreachable(host.name, host.address, exc, timeout) from exc
        raise HostUnreachable(
            host.name,
            host.address,
            f"the engine closed the connection in the middle of the {what} (it stopped or "
            "restarted)",
            "check that it runs again (sudo systemctl status docker), then try again",
        ) from exc
