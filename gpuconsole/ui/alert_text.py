"""How alerts read: titles, short durations and clock times, shared by the console's toasts, its
alerts panel and its containers table (pure text, no widgets; it sits in ui/ because the
present layer lies below the monitor that defines alerts)."""

from __future__ import annotations

import time

from gpuconsole.monitor.alerts import Alert, AlertKind

TITLES: dict[AlertKind, str] = {
    AlertKind.IDLE_RESERVATION: "Idle GPU reservation",
    AlertKind.TEMPERATURE: "GPU temperature",
    AlertKind.MEMORY: "GPU memory full",
    AlertKind.GPU_LOST: "GPU lost",
    AlertKind.DRIVER: "GPU telemetry",
    AlertKind.UNRESERVED_USE: "GPU use without reservation",
}


def title(alert: Alert, with_host: bool = False) -> str:
    """A toast's title: what kind, whether it is over, and the host when there are several."""
    text = TITLES[alert.kind] + ("" if alert.raised else " — over")
    return f"{text} ({alert.host})" if with_host else text


def short_duration(seconds: float) -> str:
    """A duration for a table cell in minute steps (a row repaints at most once a minute for
    it): <1m, 17m, 2h05m, 3d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return "<1m"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def idle_flag(alert: Alert, now: float) -> str:
    """The containers table's mark on a container whose reservation is idle."""
    return f"⚠ idle {short_duration(now - alert.started_at)}"


def clock(at: float, now: float | None = None) -> str:
    """A local time of day; with the date when it was not today."""
    now = time.time() if now is None else now
    then = time.localtime(at)
    if time.strftime("%Y-%m-%d", then) == time.strftime("%Y-%m-%d", time.localtime(now)):
        return time.strftime("%H:%M:%S", then)
    return time.strftime("%Y-%m-%d %H:%M", then)


def subject(alert: Alert) -> str:
    """What the alert is about: a container, a GPU, or the host's telemetry."""
    if alert.container_name or alert.container_id:
        return alert.container_name or (alert.container_id or "")[:12]
    if alert.gpu_index is not None:
        return f"GPU {alert.gpu_index}"
    return "telemetry"
