"""Pure presentation of backend values as text, shared by the TUI and the CLI.

One place decides how a missing value looks ("N/A"), how sizes and ports read, and how a GPU
request is summarised, so the table, the details screen and ``gpuconsole ps`` always agree.
"""

from __future__ import annotations

import re

from gpuconsole.backend.models import EVERY_INTERFACE, ContainerSummary, GpuRequest, PortMapping

NA = "N/A"
NONE = "-"

_SECRET = re.compile(
    r"TOKEN|PASS|PWD|(^|_)PW($|_)|SECRET|KEY|CREDENTIAL|AUTH|PRIVATE|COOKIE|SESSION",
    re.IGNORECASE,
)
#: user:password@ in a URL (DATABASE_URL=postgres://u:pw@db/x) and secrets in argv.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+(?P<tail>@)", re.I)
_ARG_SECRET = re.compile(r"(?P<head>(token|password|passwd|secret)=)[^\s&]+", re.I)
MASK = "••••••"


def na(value: object | None, text: str | None = None) -> str:
    """The one place a missing reading becomes 'N/A'."""
    if value is None:
        return NA
    return text if text is not None else str(value)


_BINARY_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB", "RiB", "QiB")


def size(n: int | None) -> str:
    """Binary units with one decimal, as ``humanize.naturalsize(n, binary=True)`` writes them
    (equal for every size checked), at a fraction of its cost: the table formats two sizes per
    container on every refresh, and humanize looks its words up in gettext each time."""
    if n is None:
        return NA
    magnitude = abs(n)
    if magnitude < 1024:
        return f"{n} Byte" if magnitude == 1 else f"{n} Bytes"
    value, unit = magnitude / 1024, 0
    while round(value, 1) >= 1024 and unit < len(_BINARY_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{'-' if n < 0 else ''}{value:.1f} {_BINARY_UNITS[unit]}"


def cpu_percent(value: float | None, running: bool = True) -> str:
    if not running:
        return NONE
    return na(value, f"{value:.1f}%" if value is not None else None)


def memory(used: int | None, limit: int | None, running: bool = True) -> str:
    if not running:
        return NONE
    if used is None:
        return NA
    return f"{size(used)} / {size(limit)}"


def port(p: PortMapping) -> str:
    if p.host_port is None:
        return f"{p.private_port}/{p.protocol}"
    ip = p.host_ip or ""
    if ip in EVERY_INTERFACE:
        ip = "*"
    where = f"{ip}:{p.host_port}" if ip else str(p.host_port)
    return f"{where}→{p.private_port}/{p.protocol}"


def ports(items: tuple[PortMapping, ...]) -> str:
    """Published ports; an IPv4 and IPv6 binding of the same port count once."""
    seen: list[str] = []
    for p in items:
        if p.host_ip == EVERY_INTERFACE[1] and any(
            q.host_ip == EVERY_INTERFACE[0] and q.host_port == p.host_port for q in items
        ):
            continue
        text = port(p)
        if text not in seen:
            seen.append(text)
    return ", ".join(seen) if seen else NONE


def gpus(request: GpuRequest | None) -> str:
    """'all', '0,1', 'any 2' or '-' (none requested); N/A when not known yet."""
    if request is None:
        return NA
    if request.all:
        return "all"
    if request.device_ids:
        return ",".join(request.device_ids)
    if request.count:
        return f"any {request.count}"
    return NONE


def gpus_json(request: GpuRequest | None) -> str | None:
    if request is None:
        return None
    text = gpus(request)
    return "none" if text == NONE else text


def image(name: str, width: int = 40) -> str:
    """Shorten a long image reference from the left so the tag always stays visible."""
    if len(name) <= width:
        return name
    return "…" + name[-(width - 1) :]


def masked_env(key: str, value: str) -> str:
    if _SECRET.search(key) and value:
        return MASK
    return mask_text(value)


def mask_text(text: str) -> str:
    """Hide passwords in URLs, and secret values given as KEY=VALUE inside free text."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + m.group("tail"), text)
    return _ARG_SECRET.sub(lambda m: m.group("head") + MASK, text)


def is_secret(key: str) -> bool:
    return bool(_SECRET.search(key))


def variant(summary: ContainerSummary) -> str:
    return summary.variant or NONE


def duration_s(seconds: float) -> str:
    import humanize

    return str(humanize.naturaldelta(seconds))


def waited(seconds: float) -> str:
    """How long something has not answered, to the second while it is young ("7 s"), then
    coarser ("4 min", "2 h 05 min", "3 d"): a line that ages shows its age, and stops changing
    every second once seconds no longer matter."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d"


# -- GPUs --------------------------------------------------------------------------------------

_SPARK = "▁▂▃▄▅▆▇█"


def percent(value: float | None) -> str:
    return na(value, f"{value:.0f}%" if value is not None else None)


def watts(draw: float | None, limit: float | None = None) -> str:
    if draw is None:
        return NA
    return f"{draw:.0f} W" if limit is None else f"{draw:.0f} / {limit:.0f} W"


def celsius(value: int | None) -> str:
    return na(value, f"{value} °C")


def mhz(value: int | None) -> str:
    return na(value, f"{value} MHz")


def spark(values: tuple[float | int | None, ...], width: int, top: float | None = None) -> str:
    """A one-line sparkline of the last ``width`` values; gaps (None) stay blank."""
    tail = values[-width:] if width > 0 else ()
    known = [v for v in tail if v is not None]
    if not known:
        return " " * len(tail)
    hi = top if top else max(known)
    out = []
    for v in tail:
        if v is None:
            out.append(" ")
            continue
        level = 0 if hi <= 0 else min(len(_SPARK) - 1, int(v / hi * (len(_SPARK) - 1) + 0.5))
        out.append(_SPARK[level])
    return "".join(out).rjust(width)


def bar(fraction: float | None, width: int) -> str:
    """A horizontal bar with eighth-cell resolution."""
    if fraction is None:
        return NA.center(width)
    cells = max(0.0, min(1.0, fraction)) * width
    full = int(cells)
    part = int((cells - full) * 8)
    partial = "▏▎▍▌▋▊▉"[part - 1] if part and full < width else ""
    return ("█" * full + partial).ljust(width, "·")


def level(value: float | None, warn: float, crit: float) -> str:
    """'ok', 'warn' or 'crit' for threshold colours; 'na' for a missing value."""
    if value is None:
        return "na"
    if value >= crit:
        return "crit"
    return "warn" if value >= warn else "ok"
