"""An engine keeps its container list from its own events, not by listing every refresh.

Against the real engine: a container started or stopped elsewhere shows through one filtered
list of it (no whole list), and a running container's status text advances with no list at all,
worded as the engine words it. A quiet refresh still asks the engine one cheap thing (a ping),
so a frozen engine fails it as a list would; and a host that wraps the engine's ``snapshot``
(the DockerHost protocol's call, as a stand-in runtime does) sees the kept list through it.
"""

from __future__ import annotations

import os
import queue
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gpuconsole.backend.docker.live_list import LiveList
from gpuconsole.backend.docker.status_text import (
    ClockSkew,
    duration_span,
    human_duration,
    parse_instant,
    status_clock,
)
from gpuconsole.backend.models import GpuRequest, HostSnapshot
from gpuconsole.monitor.events import (
    ContainersUpdated,
    EngineDown,
    EngineSlow,
    MonitorEvent,
    RefreshFailed,
)
from gpuconsole.monitor.host_monitor import HostMonitor

from support import GpusFromLabel, engine_url, host_at, wait_for

# -- the wording ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "Less than a second"),
        (1.9, "1 second"),
        (59.9, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3599, "59 minutes"),
        (3600, "About an hour"),
        (5399, "About an hour"),
        (5400, "2 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (14 * 86400, "2 weeks"),
        (60 * 86400, "2 months"),
        (2 * 365 * 86400, "2 years"),
    ],
)
def test_durations_are_worded_as_docker_words_them(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_engine_instants_are_read_to_the_microsecond() -> None:
    assert parse_instant("2026-11-28T10:33:01.123456789Z") == pytest.approx(1795861981.123456)
    assert parse_instant("2026-11-28T11:33:01+01:00") == pytest.approx(1795861981.0)
    assert parse_instant("0001-01-01T00:00:00Z") is None
    assert parse_instant("") is None


def test_the_skew_stays_zero_until_a_text_disproves_it() -> None:
    clock = status_clock("Up 7 seconds (healthy)", started=1000.0, finished=None)
    assert clock is not None
    assert clock.render(1009.5) == "Up 9 seconds (healthy)"
    assert duration_span("7 seconds") == (7.0, 8.0)
    skew = ClockSkew()
    assert skew.observe(clock, "Up 7 seconds (healthy)", local_now=1007.5)
    assert skew.value == 0.0
    # The daemon's clock runs 30 s ahead of this machine's: its text says so.
    skew.reset()
    assert skew.observe(clock, "Up 37 seconds (healthy)", local_now=1007.5)
    assert 29.5 <= skew.value < 30.5
    assert not skew.observe(clock, "Up 2 seconds (healthy)", local_now=1007.5)
    assert status_clock("Created", None, None) is None


# -- against the engine -----------------------------------------------------------------------


@pytest.fixture
def monitored() -> Iterator[tuple[HostMonitor, queue.Queue[MonitorEvent]]]:
    from gpuconsole.backend.hosts.open import local_host

    host = local_host(engine_url(), gpu=False)
    events: queue.Queue[MonitorEvent] = queue.Queue()
    monitor = HostMonitor(host, events.put, refresh_seconds=0.5, container_stats=False)
    engine: Any = host.engine
    engine.live.full_every = 3600.0  # only events and the stream's connect list it all
    monitor.start()
    yield monitor, events
    monitor.stop()
    host.close()


def latest(events: queue.Queue[MonitorEvent]) -> Callable[[], HostSnapshot | None]:
    last: list[HostSnapshot] = []

    def read() -> HostSnapshot | None:
        while True:
            try:
                event = events.get_nowait()
            except queue.Empty:
                return last[-1] if last else None
            if isinstance(event, ContainersUpdated):
                last.append(event.snapshot)

    return read


def shown(snapshot: HostSnapshot | None, cid: str) -> Any:
    if snapshot is None:
        return None
    return next((c for c in snapshot.containers if c.id == cid), None)


def following(
    monitored: tuple[HostMonitor, queue.Queue[MonitorEvent]],
) -> tuple[HostMonitor, LiveList, Callable[[], HostSnapshot | None]]:
    """The monitored host's kept list and a reader of the latest containers it emitted."""
    monitor, events = monitored
    engine: Any = monitor.host.engine
    live = engine.live
    assert isinstance(live, LiveList)
    return monitor, live, latest(events)


def test_a_container_started_and_stopped_elsewhere_shows_without_a_whole_list(
    monitored: tuple[HostMonitor, queue.Queue[MonitorEvent]],
    make_container: Callable[..., Any],
) -> None:
    monitor, live, read = following(monitored)
    wait_for(lambda: read() is not None and monitor._watch is not None, what="a first list")
    wait_for(
        lambda: live.following and live.full_lists >= 1,
        what="the list the event stream's connect asks for",
    )
    time.sleep(0.6)
    read()
    full = live.full_lists

    container = make_container("sleep 3600")
    wait_for(lambda: getattr(shown(read(), container.id), "running", False), 5, "it runs")
    assert shown(read(), container.id).status.startswith("Up ")
    container.stop(timeout=0)
    wait_for(lambda: getattr(shown(read(), container.id), "state", "") == "exited", 5, "it exited")
    assert shown(read(), container.id).status.startswith("Exited (")
    container.remove(force=True)
    wait_for(lambda: shown(read(), container.id) is None, 5, "it is gone")
    assert live.full_lists == full
    assert live.partial_lists >= 3


def test_a_status_text_advances_with_no_list_as_the_engine_words_it(
    monitored: tuple[HostMonitor, queue.Queue[MonitorEvent]],
    make_container: Callable[..., Any],
    docker_client: Any,
) -> None:
    _, live, read = following(monitored)
    wait_for(
        lambda: live.following and live.full_lists >= 1,
        what="the list the event stream's connect asks for",
    )
    container = make_container("sleep 3600")
    wait_for(lambda: getattr(shown(read(), container.id), "running", False), 5, "it runs")
    time.sleep(0.6)  # the events of the start have been applied
    # Other users of the engine make events of their own: count the lists of this one.
    asked: list[str] = []
    list_some = live.engine.list_some

    def spy(ids: list[str], all: bool = True) -> Any:
        asked.extend(ids)
        return list_some(ids, all=all)

    watched: Any = live.engine
    watched.list_some = spy
    full = live.full_lists
    first = shown(read(), container.id).status
    wait_for(lambda: shown(read(), container.id).status != first, 5, "the text to advance")
    assert live.full_lists == full
    assert container.id not in asked
    # What the engine says now is what the monitor renders (one of the texts around it).
    before = docker_client.api.containers(filters={"id": container.id})[0]["Status"]
    mine = live.current(all=True)
    after = docker_client.api.containers(filters={"id": container.id})[0]["Status"]
    text = next(c.status for c in mine if c.id == container.id)
    assert text in (before, after)


# -- a quiet refresh still asks the engine (a ping) -------------------------------------------


def record_requests(engine: Any) -> list[tuple[str, str, object]]:
    """(method, URL, timeout) of every HTTP request the engine's client makes from now on (a
    spy on the real client: the requests still go to the engine)."""
    api = engine.api()
    seen: list[tuple[str, str, object]] = []
    request = api.request

    def spy(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        seen.append((method, url, kwargs.get("timeout")))
        return request(method, url, *args, **kwargs)

    api.request = spy
    return seen


@pytest.mark.parametrize("where", ["local", "ssh"])
def test_a_quiet_refresh_pings_the_engine_on_its_own_connection_and_lists_nothing(
    where: str, request: pytest.FixtureRequest
) -> None:
    """What a refresh costs at rest: one GET /_ping written on the connection kept for it (the
    engine's unix socket, or a stream-local channel on the host's one SSH transport: no login,
    no session), with the list's timeout; nothing through docker-py's client."""
    if where == "ssh":
        from sshfixtures import loop_host

        request.getfixturevalue("ssh_home")
        host = loop_host(gpu=False)
    else:
        host = host_at(timeout=7)
    events: queue.Queue[MonitorEvent] = queue.Queue()
    monitor = HostMonitor(host, events.put, refresh_seconds=0.25, container_stats=False)
    live = host.engine.live
    live.full_every = 3600.0
    ping = host.engine.raw_ping
    monitor.start()
    try:
        wait_for(lambda: live.following and live.pings >= 2, 20, "quiet refreshes")
        seen = record_requests(host.engine)
        full, partial, pings = live.full_lists, live.partial_lists, live.pings
        checks, opened = ping.checks, ping.opened
        if where == "ssh":
            machine = host.machine
            logins, sessions = machine.connects, machine.sessions_opened
        wait_for(lambda: live.pings >= pings + 4, 10, "four more quiet refreshes")
        route = host.engine.route
        conn = ping.connection
        if where == "ssh":
            assert (machine.connects, machine.sessions_opened) == (logins, sessions)
            assert conn.get_transport() is machine.transport()
    finally:
        monitor.stop()
        host.close()
    quiet = live.full_lists == full and live.partial_lists == partial
    if not quiet:  # another test's container moved on the shared engine: not at rest
        pytest.skip("the shared engine was not quiet during the test")
    assert not seen, f"quiet refreshes went through docker-py: {seen}"
    assert ping.checks >= checks + 4
    assert ping.opened == opened == 1  # one connection, kept
    assert ping.timeout == host.engine.timeout
    assert ping.connection is None  # closed with the host
    assert route == ("stream-local" if where == "ssh" else "unix")


def dockerd_pid(engine: Any) -> int:
    return int((engine.root / "pid").read_text().strip())


def test_a_frozen_engine_fails_a_quiet_refresh_as_a_list_would(private_engine: Any) -> None:
    """With the list kept from events a refresh lists nothing; its ping must still hang on a
    frozen engine, so the watchdog says so and the call's timeout reports the engine down."""
    host = host_at(private_engine.url, timeout=3)
    events: queue.Queue[MonitorEvent] = queue.Queue()
    monitor = HostMonitor(
        host, events.put, refresh_seconds=0.25, container_stats=False, slow_after=1.0
    )
    live = host.engine.live
    live.full_every = 3600.0
    monitor.start()
    said: list[MonitorEvent] = []

    def heard(kind: type[Any]) -> bool:
        while True:
            try:
                said.append(events.get_nowait())
            except queue.Empty:
                return any(isinstance(e, kind) for e in said)

    pid = dockerd_pid(private_engine)
    try:
        wait_for(lambda: live.following and live.pings >= 2, 20, "quiet refreshes")
        full = live.full_lists
        os.kill(pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            said.clear()
            while not events.empty():
                events.get_nowait()
            wait_for(lambda: heard(EngineSlow), 4, "the watchdog on the hung refresh")
            slow_after = time.monotonic() - frozen_at
            wait_for(lambda: heard(EngineDown), 8, "the ping's timeout")
            down = next(e for e in said if isinstance(e, EngineDown))
            assert down.timed_out
            assert live.full_lists == full  # it was the ping that hung, not a list
        finally:
            os.kill(pid, signal.SIGCONT)
        said.clear()
        wait_for(lambda: heard(ContainersUpdated), 15, "the list live again")
        assert not any(isinstance(e, RefreshFailed) for e in said)
        wait_for(lambda: live.full_lists > full, 5, "the whole list taken after the failure")
    finally:
        monitor.stop()
        host.close()
    assert slow_after <= 3.0


# -- a host that wraps the engine's snapshot --------------------------------------------------

LABEL = "gpct-live.gpus"


def test_a_host_wrapping_the_engine_snapshot_sees_the_kept_list_through_it(
    make_container: Callable[..., Any],
) -> None:
    """The kept list lives beneath ``snapshot``: the wrapper's additions reach every refresh
    (the idle-reservation flag of tests/ui/test_alerts_console.py takes this path), refreshes
    at rest list nothing, and a wake through the wrapper takes the whole list."""
    holder = make_container("sleep 3600", labels={LABEL: "0"})
    host = host_at()
    inner = host.engine
    host.engine = GpusFromLabel(inner, LABEL)
    events: queue.Queue[MonitorEvent] = queue.Queue()
    monitor = HostMonitor(host, events.put, refresh_seconds=0.25, container_stats=False)
    live = inner.live
    live.full_every = 3600.0
    monitor.start()
    failed: list[str] = []
    snaps: list[HostSnapshot] = []

    def drain() -> None:
        while True:
            try:
                event = events.get_nowait()
            except queue.Empty:
                return
            if isinstance(event, RefreshFailed):
                failed.append(event.error)
            elif isinstance(event, ContainersUpdated):
                snaps.append(event.snapshot)

    try:
        wait_for(lambda: live.following and live.pings >= 2, 20, "quiet refreshes")
        drain()
        snaps.clear()
        pings = live.pings
        wait_for(lambda: live.pings >= pings + 3, 10, "three quiet refreshes")
        drain()
        assert not failed
        assert snaps and all(s.gpus.get(holder.id) == GpuRequest(device_ids=("0",)) for s in snaps)
        full = live.full_lists
        monitor.wake()
        wait_for(lambda: live.full_lists > full, 5, "the whole list after a wake")
    finally:
        monitor.stop()
        host.close()
