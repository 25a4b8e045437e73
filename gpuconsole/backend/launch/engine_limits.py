"""Which resource limits (``--ulimit``) a host's Docker engine can give a container.

Why this exists: the runtime (runc, started by containerd's shim, started by dockerd) sets a
container's limits with ``prlimit`` before the container runs. Raising a *hard* limit above its own
needs CAP_SYS_RESOURCE in the initial user namespace; rootless Docker, Docker inside LXC or inside
another container run without it, and the container then fails at start ("error setting rlimit
type 8"). Our defaults (memlock unlimited, 64 MiB stack) would break a launch the user never asked
them for, so the launch asks first and leaves out what the engine cannot apply.

What is read, and why that is reliable: the limits and capabilities of the engine's own processes,
from ``/proc`` of the engine's machine, in ONE ``sh`` command through the host's Machine (the same
code locally and over SSH). The runtime inherits both from them, so "at or below the engine's hard
limit" is exactly what works without the capability, and with CAP_SYS_RESOURCE in the initial user
namespace everything works (up to ``fs.nr_open`` for open files). Which process serves the engine:
locally the owner of its socket (``SO_PEERCRED``, exact); remotely the dockerd holding the socket's
inode, else the one naming the socket on its command line, else the only dockerd; its containerd
child (or the machine's only containerd) is read too and the lowest limit wins. Rootless Docker
also says so in ``docker info``. Not chosen: starting a probe container (needs an image, costs a
create and a start, and shows up on a shared engine) and the capability bits alone (a rootless
engine has every capability — in its own user namespace, where they do not count).

Cost: one command, about 30 ms locally and one SSH exec remotely, once per host (cached for the
host's lifetime; dropped when a start still fails on a limit). An engine whose processes cannot be
seen (hidepid, a socket reached through a proxy) is "unknown": nothing is refused, defaults are
applied, and the launcher retries without a default the runtime then refuses.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.launch.spec import Ulimit

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import DockerHost
    from gpuconsole.backend.hosts.machine import Machine

UNLIMITED = -1

#: Docker's ulimit names -> the rows of /proc/PID/limits.
PROC_NAMES: dict[str, str] = {
    "cpu": "Max cpu time",
    "fsize": "Max file size",
    "data": "Max data size",
    "stack": "Max stack size",
    "core": "Max core file size",
    "rss": "Max resident set",
    "nproc": "Max processes",
    "nofile": "Max open files",
    "memlock": "Max locked memory",
    "locks": "Max file locks",
    "sigpending": "Max pending signals",
    "msgqueue": "Max msgqueue size",
    "nice": "Max nice priority",
    "rtprio": "Max realtime priority",
    "rttime": "Max realtime timeout",
}
_BY_ROW = {row: name for name, row in PROC_NAMES.items()}

#: RLIMIT_* numbers (asm-generic), as runc's "error setting rlimit type N" names them.
RLIMIT_TYPES: dict[int, str] = {
    0: "cpu",
    1: "fsize",
    2: "data",
    3: "stack",
    4: "core",
    5: "rss",
    6: "nproc",
    7: "nofile",
    8: "memlock",
    10: "locks",
    11: "sigpending",
    12: "msgqueue",
    13: "nice",
    14: "rtprio",
    15: "rttime",
}

_WORDS = {
    "memlock": "locked memory",
    "stack": "the stack size",
    "nofile": "open files",
    "nproc": "processes",
    "core": "core file size",
}
_BYTES = frozenset({"memlock", "stack", "core", "data", "fsize", "rss", "msgqueue"})
_CAP_SYS_RESOURCE = 24

#: Prints the engine's processes (``proc PID COMM HOW``) with their limits, CapEff and uid_map,
#: then ``nr_open``. $1: the engine's socket path; $2: its owner's pid when already known.
PROBE_SCRIPT = r"""
sock=$1 hint=$2
show() {
    printf 'proc %s %s %s\n' "$1" "$(cat "/proc/$1/comm" 2>/dev/null)" "$2"
    grep '^Max' "/proc/$1/limits" 2>/dev/null | sed 's/^/limit /'
    grep '^CapEff:' "/proc/$1/status" 2>/dev/null | sed 's/^/status /'
    sed 's/^/uidmap /' "/proc/$1/uid_map" 2>/dev/null
}
named() { grep -lx "$1" /proc/[0-9]*/comm 2>/dev/null | cut -d/ -f3; }
count() { set -- $1; echo $#; }
daemons=$(named dockerd)
engine="" how=""
if [ -n "$hint" ] && [ -r "/proc/$hint/limits" ]; then
    engine=$hint how=socket
else
    inode=$(awk -v p="$sock" '$8 == p { print $7; exit }' /proc/net/unix 2>/dev/null)
    for p in $daemons; do
        if [ -n "$inode" ] && ls -l "/proc/$p/fd" 2>/dev/null | grep -q "socket:\[$inode\]"; then
            engine=$p how=socket; break
        fi
    done
    if [ -z "$engine" ] && [ -n "$sock" ]; then
        for p in $daemons; do
            if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$sock"; then
                engine=$p how=cmdline; break
            fi
        done
    fi
    if [ -z "$engine" ] && [ "$(count "$daemons")" = 1 ]; then engine=$daemons how=only; fi
fi
if [ -n "$engine" ]; then
    show "$engine" "$how"
    runtime=""
    for k in $(cat /proc/"$engine"/task/*/children 2>/dev/null); do
        [ "$(cat "/proc/$k/comm" 2>/dev/null)" = containerd ] && runtime="$runtime $k"
    done
    if [ -z "$runtime" ]; then
        all=$(named containerd)
        [ "$(count "$all")" = 1 ] && runtime=$all
    fi
    for p in $runtime; do show "$p" runtime; done
else
    for p in $daemons; do show "$p" guess; done
fi
printf 'nr_open %s\n' "$(cat /proc/sys/fs/nr_open 2>/dev/null)"
"""


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """What the engine's runtime can set. The default (nothing known) refuses nothing."""

    #: False when no engine process could be read: nothing is refused, defaults are applied.
    known: bool = False
    #: Sure which process serves the engine (its socket's owner, or the only dockerd): only
    #: then is an explicit value refused; a guess only leaves defaults out.
    exact: bool = False
    #: CAP_SYS_RESOURCE in the initial user namespace: any hard limit can be raised.
    can_raise: bool = True
    #: Hard limit per Docker ulimit name (-1 unlimited): the lowest over the engine's processes.
    hard: Mapping[str, int] = field(default_factory=dict)
    #: fs.nr_open: no process gets more open files, whatever its capabilities.
    nr_open: int | None = None
    #: Why it may not raise a limit, for messages.
    why: str = ""
    #: What was read ("dockerd (pid 9303), containerd (pid 9319)"), for messages and tests.
    source: str = ""

    def ceiling(self, name: str) -> int | None:
        """The highest hard limit ``name`` can get (-1: unlimited); None when unknown."""
        if not self.known:
            return None
        top: int | None = UNLIMITED if self.can_raise else self.hard.get(name)
        if name == "nofile" and self.nr_open:
            top = self.nr_open if top in (None, UNLIMITED) else min(top, self.nr_open)
        return top

    def refusal(self, limit: Ulimit, host: str) -> str | None:
        """Why the engine of ``host`` cannot apply ``limit`` (a clause), or None if it can."""
        top = self.ceiling(limit.name)
        if top is None or top == UNLIMITED:
            return None
        if limit.hard != UNLIMITED and limit.hard <= top:
            return None
        if limit.name == "nofile" and top == self.nr_open:
            return f"the kernel of host {host!r} allows at most {top} open files (fs.nr_open)"
        what = _WORDS.get(limit.name, limit.name)
        top_text = human(limit.name, top)
        return f"the engine of host {host!r} may not raise {what} above {top_text} ({self.why})"

    def fix(self, limit: Ulimit) -> str:
        """What to do instead of ``limit`` (use the ceiling, leave it out, or lift the cause)."""
        top = self.ceiling(limit.name)
        lift = (
            "raise fs.nr_open"
            if limit.name == "nofile" and top == self.nr_open
            else "give the engine CAP_SYS_RESOURCE"
        )
        return f"use {limit.name}={top} or less, leave {limit.name} out, or {lift}"


def human(name: str, value: int) -> str:
    """A limit's value for people: sizes in KiB/MiB/GiB, -1 as unlimited."""
    if value == UNLIMITED:
        return "unlimited"
    if name not in _BYTES:
        return str(value)
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= factor and value % factor == 0:
            return f"{value // factor} {unit}"
    return f"{value} bytes"


@dataclass
class _Proc:
    pid: int
    comm: str
    how: str
    hard: dict[str, int] = field(default_factory=dict)
    cap_sys_resource: bool | None = None
    init_userns: bool = True


_LIMIT_ROW = re.compile(r"(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)")


def _value(text: str) -> int | None:
    if text == "unlimited":
        return UNLIMITED
    return int(text) if text.isdigit() else None


def _procs(text: str) -> tuple[list[_Proc], int | None]:
    """The ``proc`` blocks and ``nr_open`` of PROBE_SCRIPT's output."""
    procs: list[_Proc] = []
    nr_open: int | None = None
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "proc":
            parts = rest.split()
            if len(parts) == 3 and parts[0].isdigit():
                procs.append(_Proc(int(parts[0]), parts[1], parts[2]))
        elif kind == "nr_open":
            nr_open = int(rest) if rest.strip().isdigit() else None
        elif procs and kind == "limit":
            row = _LIMIT_ROW.match(rest)
            name = _BY_ROW.get(row.group(1)) if row else None
            hard = _value(row.group(3)) if row else None
            if name is not None and hard is not None:
                procs[-1].hard[name] = hard
        elif procs and kind == "status" and rest.startswith("CapEff:"):
            with contextlib.suppress(ValueError):
                procs[-1].cap_sys_resource = bool(int(rest.split()[1], 16) >> _CAP_SYS_RESOURCE & 1)
        elif procs and kind == "uidmap" and rest.split():
            procs[-1].init_userns = rest.split() == ["0", "0", "4294967295"]
    return [p for p in procs if p.hard], nr_open


def _lowest(procs: list[_Proc]) -> dict[str, int]:
    hard: dict[str, int] = {}
    for proc in procs:
        for name, value in proc.hard.items():
            old = hard.get(name)
            if old is None or old == UNLIMITED or (value != UNLIMITED and value < old):
                hard[name] = value
    return hard


def parse_probe(text: str, *, rootless: bool = False) -> EngineLimits:
    """EngineLimits from PROBE_SCRIPT's output (pure; ``rootless`` from ``docker info``)."""
    procs, nr_open = _procs(text)
    if not procs:
        why = "rootless Docker has no CAP_SYS_RESOURCE" if rootless else ""
        return EngineLimits(known=False, can_raise=not rootless, nr_open=nr_open, why=why)
    in_userns = not all(p.init_userns for p in procs)
    no_cap = any(p.cap_sys_resource is False for p in procs)
    if rootless:
        why = "rootless Docker has no CAP_SYS_RESOURCE"
    elif in_userns:
        why = "it runs in a user namespace, without CAP_SYS_RESOURCE: rootless, LXC or a container"
    elif no_cap:
        why = "it runs without CAP_SYS_RESOURCE, e.g. inside a container or LXC"
    else:
        why = ""
    return EngineLimits(
        known=True,
        exact=procs[0].how in ("socket", "cmdline", "only"),
        can_raise=not (rootless or in_userns or no_cap),
        hard=_lowest(procs),
        nr_open=nr_open,
        why=why,
        source=", ".join(f"{p.comm} (pid {p.pid})" for p in procs),
    )


def socket_owner(path: str) -> int | None:
    """The pid of the process serving a local unix socket (``SO_PEERCRED``), or None."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:  # not Linux
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(path)
            raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return None
    pid = struct.unpack("3i", raw)[0]
    return pid if pid > 0 else None


def is_rootless(info: Mapping[str, Any]) -> bool:
    """``docker info`` says the engine is rootless (SecurityOptions ``name=rootless``)."""
    return any("name=rootless" in str(o) for o in info.get("SecurityOptions") or ())


def probe_engine_limits(
    machine: Machine, socket_path: str | None, info: Mapping[str, Any]
) -> EngineLimits:
    """Read the engine's limits on ``machine`` (one command). Raises GpuconsoleError."""
    owner = socket_owner(socket_path) if machine.is_local and socket_path else None
    argv = ["sh", "-c", PROBE_SCRIPT, "sh", socket_path or "", str(owner or "")]
    return parse_probe(machine.run(argv, timeout=10), rootless=is_rootless(info))


def engine_socket(host: DockerHost) -> str | None:
    """The engine's unix socket path on its machine, when the host says (DockerEngine does)."""
    path = getattr(host, "socket", None)
    return path if isinstance(path, str) and path else None


_cache: weakref.WeakKeyDictionary[object, EngineLimits] = weakref.WeakKeyDictionary()
_locks: weakref.WeakKeyDictionary[object, threading.Lock] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def _host_lock(host: object) -> threading.Lock:
    with _guard:
        lock = _locks.get(host)
        if lock is None:
            lock = _locks[host] = threading.Lock()
        return lock


def engine_limits(host: DockerHost, info: Mapping[str, Any]) -> EngineLimits:
    """The host's EngineLimits, probed on first use and then cached for the host's lifetime.

    A form re-checks on every keystroke: only the first check pays for the probe. A probe that
    fails (link down, no ``sh``) is not cached and reads as unknown, which refuses nothing.
    """
    try:
        lock = _host_lock(host)
    except TypeError:  # a host that cannot be weakly referenced: probe, do not cache
        return _probe_or_unknown(host, info)[0]
    with lock:
        found = _cache.get(host)
        if found is None:
            found, ok = _probe_or_unknown(host, info)
            if ok:
                _cache[host] = found
        return found


def _probe_or_unknown(host: DockerHost, info: Mapping[str, Any]) -> tuple[EngineLimits, bool]:
    """(limits, worth caching). An engine reached over TCP may run on any computer: its
    machine's processes say nothing about it, so it is unknown (and that is cached)."""
    path = engine_socket(host)
    if path is None:
        return EngineLimits(), True
    try:
        return probe_engine_limits(host.machine, path, info), True
    except GpuconsoleError:
        return EngineLimits(), False


def forget_engine_limits(host: DockerHost) -> None:
    """Drop the cached probe (the engine refused a limit anyway): the next launch asks again."""
    with _guard, contextlib.suppress(TypeError):
        _cache.pop(host, None)


def refused_rlimit(message: str) -> str | None:
    """The ulimit named by runc's "error setting rlimit type N": its name, "" for a number we
    do not know, None when ``message`` is not that error."""
    found = re.search(r"error setting rlimit type (\d+)", message, re.IGNORECASE)
    if found is None:
        return None
    return RLIMIT_TYPES.get(int(found.group(1)), "")
