"""The monitor keeps a host's container list from engine events, not by listing every refresh.

Against the real engine: a container started or stopped elsewhere shows through one filtered
list of it (no whole list), and a running container's status text advances with no list at all,
worded as the engine words it.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gpuconsole.backend.docker.status_text import (
    ClockSkew,
    duration_span,
    human_duration,
    parse_instant,
    status_clock,
)
from gpuconsole.backend.models import HostSnapshot
from gpuconsole.monitor.events import ContainersUpdated, MonitorEvent
from gpuconsole.monitor.host_monitor import HostMonitor
from gpuconsole.monitor.live_list import LiveList

from support import engine_url, wait_for

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
    assert monitor._live is not None
    monitor._live.full_every = 3600.0  # only events and the stream's (re)connect list it all
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


def test_a_container_started_and_stopped_elsewhere_shows_without_a_whole_list(
    monitored: tuple[HostMonitor, queue.Queue[MonitorEvent]],
    make_container: Callable[..., Any],
) -> None:
    monitor, events = monitored
    live = monitor._live
    assert isinstance(live, LiveList)
    read = latest(events)
    wait_for(lambda: read() is not None and monitor._watch is not None, what="a first list")
    wait_for(lambda: live.full_lists >= 2, what="the list the event stream's connect asks for")
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
    monitor, events = monitored
    live = monitor._live
    assert isinstance(live, LiveList)
    read = latest(events)
    wait_for(lambda: live.full_lists >= 2, what="the list the event stream's connect asks for")
    container = make_container("sleep 3600")
    wait_for(lambda: getattr(shown(read(), container.id), "running", False), 5, "it runs")
    time.sleep(0.6)  # the events of the start have been applied
    # Other users of the engine make events of their own: count the lists of this one.
    asked: list[str] = []
    list_some = live.engine.list_some

    def spy(ids: list[str], all: bool = True) -> Any:
        asked.extend(ids)
        return list_some(ids, all=all)

    live.engine.list_some = spy
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
