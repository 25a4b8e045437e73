"""A Docker engine on a Machine, reached through docker-py's low-level client.

The engine does not know how its API is reached: ``connect_api`` builds a connected client (a
unix socket here, or the remote socket carried over the host's one SSH connection). What it
reads besides the API — every running container's cgroup files — it reads through its machine,
so the same code is fast locally and costs one remote command per refresh over SSH.

Design choices that matter for speed and robustness:
- every call has a timeout, and the client is built lazily, so a dead engine costs one timeout
  and is retried on the next refresh instead of failing construction;
- the container list kept from the engine's own events while one of its event streams is
  connected (live_list.py): a refresh lists only what an event named, the whole list every 30 s,
  and otherwise pings (one GET /_ping, so a hung engine still fails the refresh; written by hand
  on a connection kept for it where the API is a unix socket or a stream-local channel,
  raw_ping.py); with no stream connected, one list call per refresh. No per-container
  inspect per refresh: GPU requests, which only inspect shows, never change for a container id,
  so each id is inspected once and cached;
- CPU and memory from the cgroups in one pass, the stats API only for containers whose cgroup
  is not visible from the machine.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.docker.cgroup_stats import CgroupStatsReader
from gpuconsole.backend.docker.errors_map import engine_errors, unreachable
from gpuconsole.backend.docker.host import EventCallback
from gpuconsole.backend.docker.live_list import LiveList, relevant
from gpuconsole.backend.docker.parse import (
    details_from_inspect,
    gpu_request_from_host_config,
    stats_from_api,
    summary_from_list,
)
from gpuconsole.backend.docker.raw_ping import Opener, RawPing
from gpuconsole.backend.docker.status_text import parse_instant
from gpuconsole.backend.errors import GpuconsoleError, HostUnreachable
from gpuconsole.backend.models import (
    ContainerDetails,
    ContainerStats,
    ContainerSummary,
    EngineState,
    GpuRequest,
    HostSnapshot,
    HostStatus,
)

if TYPE_CHECKING:
    import docker

    from gpuconsole.backend.hosts.machine import Machine

DEFAULT_SOCKET = "unix:///var/run/docker.sock"

#: Builds a connected APIClient with the given timeout (seconds); raises on failure.
ApiConnector = Callable[[int], "docker.APIClient"]


def default_docker_host() -> str:
    """DOCKER_HOST when set, else the standard socket; never the CLI's context."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def socket_path(base_url: str) -> str | None:
    """The unix socket path of an engine URL, or None for other transports."""
    for prefix in ("unix://", "http+unix://"):
        if base_url.startswith(prefix):
            return base_url[len(prefix) :]
    return None


def url_connector(base_url: str) -> ApiConnector:
    """docker-py's own transports for a URL (unix socket, tcp); version negotiated once."""

    def connect(timeout: int) -> docker.APIClient:
        import docker

        return docker.APIClient(base_url=base_url, version="auto", timeout=timeout)

    return connect


class DockerEngine:
    """A Docker engine running on ``machine``. Implements the DockerHost protocol."""

    def __init__(
        self,
        machine: Machine,
        address: str,
        connect_api: ApiConnector,
        *,
        timeout: int = 10,
        use_cgroups: bool = True,
        socket: str | None = None,
        ping_connect: Opener | None = None,
    ) -> None:
        """``ping_connect(timeout)`` opens a connection to the engine's API socket (the unix
        socket, or a stream-local channel on the host's SSH transport): given, the liveness
        check is written on one such connection kept for it (``RawPing``), not through
        docker-py, wherever the API itself goes over such connections (not dial-stdio sessions,
        which count against sshd's MaxSessions)."""
        self.machine = machine
        #: The engine's unix socket on its machine (None: another transport), so launch checks
        #: can find the process behind it (see backend.launch.engine_limits).
        self.socket = socket
        self._name = machine.name
        self._base_url = address
        self._connect_api = connect_api
        self.timeout = timeout
        self._use_cgroups = use_cgroups
        self._client: docker.APIClient | None = None
        self._client_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._info: dict[str, Any] = {}
        self._version: dict[str, Any] = {}
        self._cgroups: CgroupStatsReader | None = None
        self._gpu_cache: dict[str, GpuRequest] = {}
        #: The running containers of the last refresh: their cgroups are read ahead of a list.
        self._last_running: list[str] = []
        #: The container list as the engine's events keep it (used while a stream follows).
        self.live = LiveList(self)
        #: The hand-written liveness check (None: docker-py's ping on the client).
        self.raw_ping = RawPing(ping_connect, timeout) if ping_connect is not None else None
        self._raw_ping_usable = False

    # -- connection -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def address(self) -> str:
        return self._base_url

    @property
    def route(self) -> str | None:
        """How the API is reached once connected: ``unix``, ``tcp``, ``stream-local`` (the
        remote socket forwarded over SSH) or ``dial-stdio`` (SSH sessions); None before."""
        client = self._client
        if client is None:
            return None
        scheme, _, rest = str(client.base_url).partition("://")
        if scheme == "http+gpuconsole":  # our transports over SSH name themselves
            return rest
        return self._base_url.partition("://")[0] or None

    @property
    def info(self) -> dict[str, Any]:
        """``docker info`` of the engine as of the last connect (empty before it)."""
        return self._info

    def _api(self) -> docker.APIClient:
        with self._client_lock:
            if self._client is not None:
                return self._client
            try:
                client = self._connect_api(int(self.timeout))
                self._version = client.version()
                self._info = client.info()
            except HostUnreachable:
                raise
            except Exception as exc:
                from gpuconsole.backend.ssh.docker_api import open_error

                cause = open_error(exc)
                if isinstance(cause, HostUnreachable):
                    raise cause from exc
                raise unreachable(self._name, self._base_url, exc, self.timeout) from exc
            self._client = client
            self._raw_ping_usable = self.raw_ping is not None and self.route != "dial-stdio"
            if self._use_cgroups and self._cgroups is None:
                with contextlib.suppress(GpuconsoleError):
                    self._cgroups = CgroupStatsReader.for_machine(
                        self.machine, self._info.get("MemTotal")
                    )
            elif self._cgroups is not None:  # made early by prime_stats
                self._cgroups.host_memory_bytes = self._info.get("MemTotal")
            return client

    def api(self) -> docker.APIClient:
        """The connected low-level client, for the launcher and the image builder.

        Wrap each call in ``engine_call`` so failures come back as typed errors.
        """
        return self._api()

    def engine_call(
        self, ref: str | None = None, action: str | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Map docker-py/transport exceptions of the calls inside to GpuconsoleError."""
        result: contextlib.AbstractContextManager[None] = self._call(ref, action)
        return result

    def _drop_client(self) -> None:
        with self._client_lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
            self._client = None
        if self.raw_ping is not None:
            self.raw_ping.close()

    def _call(self, ref: str | None = None, action: str | None = None) -> Any:
        return engine_errors(self._name, self._base_url, self.timeout, ref, action)

    def status(self) -> HostStatus:
        try:
            api = self._api()
            with self._call():
                api.ping()
        except GpuconsoleError as exc:
            self._drop_client()
            hint = getattr(exc, "hint", None)
            reason = getattr(exc, "reason", str(exc))
            return HostStatus(self._name, self._base_url, EngineState.DOWN, error=reason, hint=hint)
        return self._up_status()

    def ping(self) -> None:
        """GET /_ping: the cheapest call that proves the engine answers (a refresh that lists
        nothing makes it). Same transport and timeout as the list; raises as it does. Written
        by hand on a connection kept for it where there is one (``raw_ping``: ~0.07 ms of CPU
        locally, ~0.25 ms over SSH, against 1.2-1.6 ms through docker-py), else the client's."""
        api = self._api()
        try:
            with self._call():
                if self._raw_ping_usable and self.raw_ping is not None:
                    self.raw_ping.check()
                else:
                    api.ping()
        except GpuconsoleError as exc:
            if isinstance(exc, HostUnreachable):
                self._drop_client()
            raise

    def relist(self) -> None:
        """Take the whole container list at the next snapshot (a monitor's wake)."""
        self.live.list_all_next()

    def _up_status(self) -> HostStatus:
        return HostStatus(
            self._name,
            self._base_url,
            EngineState.UP,
            engine_version=self._version.get("Version"),
            api_version=self._version.get("ApiVersion"),
            cpus=self._info.get("NCPU"),
            memory_bytes=self._info.get("MemTotal"),
        )

    def close(self) -> None:
        """Release the connection without waiting: a call stuck on a hung engine holds the lock
        for up to its timeout, and closing (quitting the console) must not wait for that. The
        liveness check's connection is closed first, whatever holds the lock (never waits)."""
        if self.raw_ping is not None:
            self.raw_ping.close()
        if not self._client_lock.acquire(blocking=False):
            return
        try:
            client, self._client = self._client, None
        finally:
            self._client_lock.release()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    # -- reading ----------------------------------------------------------------------------

    def list_containers(self, all: bool = True) -> tuple[ContainerSummary, ...]:
        api = self._api()
        try:
            with self._call():
                raw = api.containers(all=all)
        except GpuconsoleError as exc:
            if isinstance(exc, HostUnreachable):
                self._drop_client()
            raise
        return tuple(summary_from_list(self._name, c) for c in raw)

    def list_some(self, container_ids: list[str], all: bool = True) -> tuple[ContainerSummary, ...]:
        """The list entries of these containers only (one filtered list call: what an engine
        event changed, in the list's own wording); ids that are gone are simply absent."""
        if not container_ids:
            return ()
        api = self._api()
        try:
            with self._call():
                raw = api.containers(all=all, filters={"id": list(container_ids)})
        except GpuconsoleError as exc:
            if isinstance(exc, HostUnreachable):
                self._drop_client()
            raise
        wanted = set(container_ids)  # the filter matches prefixes: keep the ids asked for
        out = (summary_from_list(self._name, c) for c in raw)
        return tuple(c for c in out if c.id in wanted)

    def container_times(self, container_ids: list[str]) -> dict[str, tuple[float | None, ...]]:
        """Container id -> (started, finished) on the daemon's clock (epoch seconds, None when
        never), one inspect each; the GPU request of the same answer is cached on the way.
        Containers that are gone are absent."""
        if not container_ids:
            return {}
        api = self._api()

        def one(cid: str) -> tuple[str, tuple[float | None, ...]] | None:
            try:
                with self._call(cid, "inspect"):
                    raw = api.inspect_container(cid)
            except GpuconsoleError:
                return None
            state = raw.get("State") or {}
            with contextlib.suppress(GpuconsoleError):
                self._gpu_cache.setdefault(
                    cid, gpu_request_from_host_config(raw.get("HostConfig") or {})
                )
            return cid, (
                parse_instant(state.get("StartedAt")),
                parse_instant(state.get("FinishedAt")),
            )

        with ThreadPoolExecutor(max_workers=min(8, len(container_ids))) as pool:
            return {item[0]: item[1] for item in pool.map(one, container_ids) if item is not None}

    def stats(self, container_ids: list[str], prune: bool = True) -> dict[str, ContainerStats]:
        """CPU and memory for running containers; cgroups first, the API for the rest.
        ``prune``: the ids are every running container (baselines of others are dropped)."""
        out: dict[str, ContainerStats] = {}
        with self._stats_lock:
            if self._cgroups is None and self._use_cgroups:
                self._api()
            if self._cgroups is not None:
                out = self._cgroups.read(container_ids, prune)
        missing = [cid for cid in container_ids if cid not in out]
        if missing:
            out.update(self._api_stats(missing))
        return out

    def prime_stats(self) -> None:
        """Take the first CPU reading of every container on this machine now, from the cgroup
        tree alone (local engines only), so ``measured_stats``' window runs while the engine
        is still being asked for its list rather than after it."""
        if not self._use_cgroups or not self.machine.is_local:
            return
        with self._stats_lock:
            if self._cgroups is None:
                with contextlib.suppress(GpuconsoleError):
                    self._cgroups = CgroupStatsReader.for_machine(self.machine)
            if self._cgroups is not None:
                self._cgroups.read(self._cgroups.local_ids())

    def measured_stats(
        self, container_ids: list[str], window: float = 1.0
    ) -> dict[str, ContainerStats]:
        """Stats with a measured CPU % for every container: readings at least ``window`` apart.

        A second spans ten CFS periods: shorter windows let a throttled container (--cpus 1.5)
        read above its own limit. The window starts at the first reading (``prime_stats``'s
        where it covered every container), not after it.
        """
        start = time.monotonic()
        cgroups = self._cgroups
        taken = cgroups.baseline_times(container_ids) if cgroups is not None else {}
        if taken and len(taken) == len(container_ids) and min(taken.values()) > start - window:
            begin = min(taken.values())
        else:
            self.stats(container_ids)
            begin = start
        time.sleep(max(0.0, begin + window - time.monotonic()))
        return self.stats(container_ids)

    def _api_stats(self, container_ids: list[str]) -> dict[str, ContainerStats]:
        api = self._api()

        def one(cid: str) -> ContainerStats | None:
            try:
                with self._call(cid, "stats"):
                    raw = api.stats(cid, stream=False)
            except GpuconsoleError:
                return None
            cpu, mem, limit = stats_from_api(raw)
            return ContainerStats(cid, cpu, mem, limit, source="api")

        with ThreadPoolExecutor(max_workers=min(16, len(container_ids))) as pool:
            results = list(pool.map(one, container_ids))
        return {r.id: r for r in results if r is not None}

    def gpu_requests(self, container_ids: list[str]) -> dict[str, GpuRequest]:
        """GPUs requested per container; inspects only ids it has not seen before."""
        unknown = [cid for cid in container_ids if cid not in self._gpu_cache]
        if unknown:
            api = self._api()

            def one(cid: str) -> tuple[str, GpuRequest] | None:
                try:
                    with self._call(cid, "inspect"):
                        raw = api.inspect_container(cid)
                except GpuconsoleError:
                    return None
                return cid, gpu_request_from_host_config(raw.get("HostConfig") or {})

            with ThreadPoolExecutor(max_workers=min(8, len(unknown))) as pool:
                for item in pool.map(one, unknown):
                    if item is not None:
                        self._gpu_cache[item[0]] = item[1]
        wanted = set(container_ids)
        for gone in set(self._gpu_cache) - wanted:
            del self._gpu_cache[gone]
        return {cid: self._gpu_cache[cid] for cid in container_ids if cid in self._gpu_cache}

    def snapshot(self, all: bool = True, stats: bool = True) -> HostSnapshot:
        """One full refresh: the list, CPU and memory of the running ones (unless ``stats`` is
        False: the recorder needs names and GPU requests only), GPU requests. The list is the
        one kept from events while an event stream of this engine is connected (then a quiet
        refresh costs one ping), else listed whole."""
        if self.live.following:
            containers = self.live.current(all)
            running = [c.id for c in containers if c.running]
            figures = self.stats(running) if running and stats else {}
        elif stats and self._last_running and self._cgroups is not None:
            containers, figures = self._listed_with_stats_ahead(all, self._last_running)
            running = [c.id for c in containers if c.running]
        else:
            containers = self.list_containers(all=all)
            running = [c.id for c in containers if c.running]
            figures = self.stats(running) if running and stats else {}
        if stats:
            self._last_running = running
        gpus = self.gpu_requests([c.id for c in containers]) if containers else {}
        return HostSnapshot(self._up_status(), containers, figures, gpus, time.time())

    def _listed_with_stats_ahead(
        self, all: bool, ahead: list[str]
    ) -> tuple[tuple[ContainerSummary, ...], dict[str, ContainerStats]]:
        """The whole list, and the cgroups of the containers that ran at the last refresh read
        while the engine builds that list (it spends most of a big list's time in dockerd, 75
        of 95 ms for 500 containers, with this process waiting on the socket): a refresh costs
        about the longer of the two, not their sum. Containers that started since are read
        after the list; those that stopped are dropped from the figures and the baselines."""
        read: dict[str, ContainerStats] = {}

        def read_ahead() -> None:
            # An error here is met again below: the list fails too, or the ids are read again.
            with contextlib.suppress(Exception):
                read.update(self.stats(ahead, prune=False))

        reader = threading.Thread(target=read_ahead, name="stats-ahead", daemon=True)
        reader.start()
        try:
            containers = self.list_containers(all=all)
        finally:
            reader.join()
        running = [c.id for c in containers if c.running]
        figures = {cid: s for cid in running if (s := read.get(cid)) is not None}
        rest = [cid for cid in running if cid not in figures]
        if rest:
            figures.update(self.stats(rest, prune=False))
        with self._stats_lock:
            if self._cgroups is not None:
                self._cgroups.keep_only(figures)
        return containers, figures

    def inspect(self, ref: str) -> ContainerDetails:
        api = self._api()
        with self._call(ref, "inspect"):
            raw = api.inspect_container(ref)
        return details_from_inspect(self._name, raw)

    # -- actions ----------------------------------------------------------------------------

    def start(self, ref: str) -> None:
        api = self._api()
        with self._call(ref, "start"):
            api.start(ref)

    def stop(self, ref: str, timeout: int = 10) -> None:
        api = self._api()
        with self._call(ref, "stop"):
            api.stop(ref, timeout=timeout)

    def restart(self, ref: str, timeout: int = 10) -> None:
        api = self._api()
        with self._call(ref, "restart"):
            api.restart(ref, timeout=timeout)

    def remove(self, ref: str, force: bool = False) -> None:
        api = self._api()
        from gpuconsole.backend.errors import ActionRejected

        try:
            with self._call(ref, "remove"):
                api.remove_container(ref, force=force)
        except ActionRejected as exc:
            if "running" in str(exc).lower() and not force:
                raise ActionRejected(
                    f"container {ref!r} is running: stop it first, or force the removal "
                    "(rm -f / confirm again)",
                    exc.status,
                ) from exc
            raise

    # -- events -----------------------------------------------------------------------------

    def watch_events(self, on_event: EventCallback) -> _EventWatch:
        watch = _EventWatch(self, on_event)
        watch.start()
        return watch


class _EventWatch:
    """Follows the engine's container events in a daemon thread, reconnecting with backoff.

    The callback runs in that thread; callers hand the news over to their own loop.
    """

    def __init__(self, host: DockerEngine, on_event: EventCallback) -> None:
        self._host = host
        self._on_event = on_event
        self._closed = threading.Event()
        self._follow_lock = threading.Lock()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _follow(self, connected: bool) -> None:
        """Tell the engine's kept list whether this stream now follows; never once closed (a
        close racing the connect must not leave the list trusted with nobody following)."""
        live = self._host.live
        with self._follow_lock:
            if connected and self._closed.is_set():
                return
            live.follow(self, connected)

    def _run(self) -> None:
        delay = 0.5
        live = self._host.live
        while not self._closed.is_set():
            connected = False
            try:
                api = self._host._api()
                self._stream = api.events(decode=True, filters={"type": "container"})
                connected = True
                delay = 0.5
                self._follow(True)
                # A reconnect may have missed events: tell the listener to refresh everything.
                self._on_event("reconnect", "")
                for event in self._stream:
                    if self._closed.is_set():
                        return
                    action = str(event.get("Action") or event.get("status") or "")
                    cid = str(event.get("id", ""))
                    if relevant(action):
                        live.changed(cid)  # before the listener: its refresh must see it
                    self._on_event(action, cid)
            except Exception:
                pass
            finally:
                if connected:
                    self._follow(False)
            if self._closed.is_set():
                return
            if connected:
                # The stream broke (the engine stopped or restarted): say so now, once, rather
                # than let the next refresh find out (it may be a long interval away).
                self._on_event("disconnect", "")
            if self._closed.wait(delay):
                return
            delay = min(delay * 2, 2.0)

    def close(self) -> None:
        self._closed.set()
        self._follow(False)
        stream = self._stream
        if stream is not None:
            # docker-py's own close() raises on SSH channels and leaves the reader blocked;
            # closing the connection under the stream ends it on every transport.
            from gpuconsole.backend.ssh.docker_api import close_stream

            close_stream(stream)
