"""``record --metrics ADDR``: the live figures as Prometheus series (prometheus-client).

Per GPU (labels host, gpu, uuid, name): power, utilization, memory used/total, temperature and
an energy counter. Per container on a GPU (labels host, gpu, uuid, container, container_id,
image): its share of power, utilization and energy, its memory on the GPU, GPU seconds,
reserved and idle-reserved seconds. Processes outside containers appear as container
"(host processes)". Bound to 127.0.0.1 unless told otherwise: GPU use is not for everyone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gpuconsole.accounting.live import LiveFigures

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

PREFIX = "gpuconsole"


def parse_address(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT``; a bare port binds 127.0.0.1."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"{text!r}: expected PORT or ADDRESS:PORT, e.g. 127.0.0.1:9400") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"{text!r}: the port must be within 0..65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    return host, number


class LiveCollector:
    """A prometheus-client collector over the recorder's live figures."""

    def __init__(self, live: LiveFigures) -> None:
        self.live = live

    def describe(self) -> list[Any]:
        return []  # series are only known once samples arrive

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        gpus, owners = self.live.copy()
        g_labels = ["host", "gpu", "uuid", "name"]

        def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)

        power = gauge("gpu_power_watts", "GPU power draw", g_labels)
        util = gauge("gpu_utilization_percent", "GPU utilization", g_labels)
        mem = gauge("gpu_memory_used_bytes", "GPU memory used", g_labels)
        total = gauge("gpu_memory_total_bytes", "GPU memory", g_labels)
        temp = gauge("gpu_temperature_celsius", "GPU temperature", g_labels)
        energy = CounterMetricFamily(
            f"{PREFIX}_gpu_energy_joules", "GPU energy since the recorder started", labels=g_labels
        )
        for g in gpus:
            values = [g.host, str(g.index), g.uuid, g.name]
            for family, value in (
                (power, g.power_w),
                (util, g.utilization),
                (mem, g.memory_used),
                (total, g.memory_total),
                (temp, g.temperature_c),
            ):
                if value is not None:
                    family.add_metric(values, float(value))
            energy.add_metric(values, g.energy_j)
        yield from (power, util, mem, total, temp, energy)

        c_labels = ["host", "gpu", "uuid", "container", "container_id", "image"]
        c_power = gauge("container_gpu_power_watts", "A container's share of GPU power", c_labels)
        c_util = gauge(
            "container_gpu_utilization_percent",
            "GPU utilization x the container's share",
            c_labels,
        )
        c_mem = gauge(
            "container_gpu_memory_used_bytes", "GPU memory of the container's processes", c_labels
        )
        c_energy = CounterMetricFamily(
            f"{PREFIX}_container_gpu_energy_joules",
            "A container's share of GPU energy",
            labels=c_labels,
        )
        c_time = CounterMetricFamily(
            f"{PREFIX}_container_gpu_seconds", "GPU time used (shared GPUs split)", labels=c_labels
        )
        c_reserved = CounterMetricFamily(
            f"{PREFIX}_container_gpu_reserved_seconds",
            "Time a reserved GPU was held",
            labels=c_labels,
        )
        c_idle = CounterMetricFamily(
            f"{PREFIX}_container_gpu_idle_reserved_seconds",
            "Time a reserved GPU was held without being used",
            labels=c_labels,
        )
        for o in owners:
            values = [o.host, str(o.index), o.uuid, o.name, o.owner[:12], o.image]
            c_power.add_metric(values, o.power_w)
            c_util.add_metric(values, o.utilization)
            if o.memory_used is not None:
                c_mem.add_metric(values, float(o.memory_used))
            c_energy.add_metric(values, o.energy_j)
            c_time.add_metric(values, o.gpu_seconds)
            c_reserved.add_metric(values, o.reserved_seconds)
            c_idle.add_metric(values, o.idle_reserved_seconds)
        yield from (c_power, c_util, c_mem, c_energy, c_time, c_reserved, c_idle)


def serve_metrics(live: LiveFigures, host: str, port: int) -> tuple[WSGIServer, int]:
    """Start the /metrics server in a daemon thread; returns it and the bound port."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(LiveCollector(live))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server, int(server.server_address[1])
