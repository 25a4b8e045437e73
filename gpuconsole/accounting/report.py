"""Usage rows from a recording: per container, image, host or GPU, over a time window.

Every figure is a SUM (or MAX) over the raw intervals of the last day and the minute rows before
it, so a report is exact to the second for the last day and to the minute before. Containers
that are gone still count: rows are kept by container id, with the name and image last seen.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from gpuconsole.accounting.meter import HOST_OWNER

GROUPINGS = ("container", "image", "host", "gpu")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True, slots=True)
class UsageRow:
    host: str | None
    container: str | None
    image: str | None
    gpus: tuple[str, ...]
    gpu_seconds: float
    energy_wh: float
    mean_utilization_percent: float | None
    peak_memory_bytes: int | None
    reserved_gpu_seconds: float
    idle_reserved_gpu_seconds: float
    first_seen: float | None
    last_seen: float | None
    container_id: str | None = None

    def as_json(self) -> dict[str, object]:
        out = asdict(self)
        out["gpus"] = list(self.gpus)
        out["first_seen"] = iso(self.first_seen)
        out["last_seen"] = iso(self.last_seen)
        for key in ("gpu_seconds", "reserved_gpu_seconds", "idle_reserved_gpu_seconds"):
            out[key] = round(float(out[key]), 3)
        out["energy_wh"] = round(self.energy_wh, 4)
        if self.mean_utilization_percent is not None:
            out["mean_utilization_percent"] = round(self.mean_utilization_percent, 2)
        return out


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return (
        datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def parse_since(text: str, now: float | None = None) -> float:
    """``24h``, ``7d``, ``90m``, ``2w`` (ago), or a date / date-time (local time unless it says
    otherwise). Raises ValueError with an example."""
    now = time.time() if now is None else now
    value = text.strip().lower()
    match = _DURATION.fullmatch(value)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration nor a date — e.g. 24h, 7d, 2026-11-01 or "
            "2026-11-01T09:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time
    return moment.timestamp()


_OWNER_ROWS = """
SELECT owner, gpu, t AS first_t, t AS last_t, gpu_seconds, energy_j, util_seconds,
       mem_used AS mem, reserved_seconds AS reserved, idle_reserved_seconds AS idle
FROM owner_samples WHERE t >= :since AND t <= :until
UNION ALL
SELECT owner, gpu, first_t, last_t, gpu_seconds, energy_j, util_seconds, mem_max,
       reserved_seconds, idle_reserved_seconds
FROM owner_minutes WHERE minute >= :since_minute AND minute <= :until_minute
"""

_KEYS = {
    "container": "w.id",
    "image": "w.image",
    "host": "w.host",
}


def usage(
    db: sqlite3.Connection,
    *,
    since: float,
    until: float | None = None,
    by: str = "container",
    host: str | None = None,
) -> list[UsageRow]:
    """The report, largest GPU time first."""
    if by not in GROUPINGS:
        raise ValueError(f"--by {by!r}: one of {', '.join(GROUPINGS)}")
    until = time.time() if until is None else until
    params: dict[str, object] = {
        "since": since,
        "until": until,
        "since_minute": int(since // 60),
        "until_minute": int(until // 60),
        "host": host,
    }
    if by == "gpu":
        return _by_gpu(db, params)
    key = _KEYS[by]
    rows = db.execute(
        f"""
        WITH o AS ({_OWNER_ROWS})
        SELECT w.host, w.container_id, w.name, w.image,
               group_concat(DISTINCT CASE WHEN o.gpu_seconds > 0 OR o.reserved > 0
                                     THEN g.host || ':' || g.gpu_index END),
               sum(o.gpu_seconds), sum(o.energy_j), sum(o.util_seconds), max(o.mem),
               sum(o.reserved), sum(o.idle), min(o.first_t), max(o.last_t),
               count(DISTINCT w.host)
        FROM o JOIN owners w ON w.id = o.owner JOIN gpus g ON g.id = o.gpu
        WHERE :host IS NULL OR w.host = :host
        GROUP BY {key}
        """,
        params,
    ).fetchall()
    out = []
    for (
        h,
        cid,
        name,
        image,
        gpus,
        gpu_s,
        energy,
        util_s,
        mem,
        reserved,
        idle,
        first,
        last,
        hosts,
    ) in rows:
        out.append(
            UsageRow(
                host=h if by != "image" or hosts == 1 else None,
                container=name if by == "container" else None,
                image=(image or None) if by in ("container", "image") else None,
                gpus=_gpu_list(gpus, with_host=by != "container"),
                gpu_seconds=gpu_s or 0.0,
                energy_wh=(energy or 0.0) / 3600.0,
                mean_utilization_percent=(util_s / gpu_s) if gpu_s else None,
                peak_memory_bytes=mem,
                reserved_gpu_seconds=reserved or 0.0,
                idle_reserved_gpu_seconds=idle or 0.0,
                first_seen=first,
                last_seen=last,
                container_id=(cid if cid != HOST_OWNER else None) if by == "container" else None,
            )
        )
    out.sort(key=lambda r: (-r.gpu_seconds, -r.reserved_gpu_seconds, r.container or ""))
    return out


def _gpu_list(text: str | None, with_host: bool) -> tuple[str, ...]:
    if not text:
        return ()
    items = sorted(
        set(text.split(",")), key=lambda s: (s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1]))
    )
    return tuple(items if with_host else (i.rsplit(":", 1)[1] for i in items))


def _by_gpu(db: sqlite3.Connection, params: dict[str, object]) -> list[UsageRow]:
    """Per GPU: its whole energy and utilization, the time anyone used it, its reservations."""
    totals = db.execute(
        """
        WITH s AS (
            SELECT gpu, t AS first_t, t AS last_t, dt AS seconds, energy_j,
                   coalesce(util, 0) * dt AS util_seconds,
                   CASE WHEN util IS NULL THEN 0 ELSE dt END AS util_dt, mem_used AS mem
            FROM gpu_samples WHERE t >= :since AND t <= :until
            UNION ALL
            SELECT gpu, minute * 60, minute * 60 + 59, seconds, energy_j, util_seconds, util_dt,
                   mem_max
            FROM gpu_minutes WHERE minute >= :since_minute AND minute <= :until_minute)
        SELECT g.id, g.host, g.uuid, g.gpu_index, sum(s.energy_j), sum(s.util_seconds),
               sum(s.util_dt), max(s.mem), min(s.first_t), max(s.last_t)
        FROM s JOIN gpus g ON g.id = s.gpu
        WHERE :host IS NULL OR g.host = :host
        GROUP BY g.id
        """,
        params,
    ).fetchall()
    owners = {
        gpu: (used, reserved, idle)
        for gpu, used, reserved, idle in db.execute(
            f"""
            WITH o AS ({_OWNER_ROWS})
            SELECT gpu, sum(gpu_seconds), sum(reserved), sum(idle) FROM o GROUP BY gpu
            """,
            params,
        ).fetchall()
    }
    out = []
    for gpu, h, uuid, index, energy, util_s, util_dt, mem, first, last in totals:
        used, reserved, idle = owners.get(gpu, (0.0, 0.0, 0.0))
        out.append(
            UsageRow(
                host=h,
                container=None,
                image=None,
                gpus=(f"{index}:{uuid}",),
                gpu_seconds=used or 0.0,
                energy_wh=(energy or 0.0) / 3600.0,
                mean_utilization_percent=(util_s / util_dt) if util_dt else None,
                peak_memory_bytes=mem,
                reserved_gpu_seconds=reserved or 0.0,
                idle_reserved_gpu_seconds=idle or 0.0,
                first_seen=first,
                last_seen=last,
            )
        )
    out.sort(key=lambda r: (r.host or "", r.gpus))
    return out


def first_recorded(db: sqlite3.Connection) -> float | None:
    row = db.execute(
        "SELECT min(t) FROM (SELECT min(t) AS t FROM gpu_samples "
        "UNION ALL SELECT min(minute) * 60 FROM gpu_minutes)"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def hours(seconds: float) -> str:
    """GPU time as H:MM:SS: exact for a short job, readable for a month of them."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def table_rows(rows: Sequence[UsageRow], by: str) -> list[list[str]]:
    from gpuconsole.present.format import size

    head = {
        "container": ["HOST", "CONTAINER", "IMAGE"],
        "image": ["IMAGE", "HOST"],
        "host": ["HOST"],
        "gpu": ["HOST", "GPU"],
    }[by]
    out = [
        [
            *head,
            "GPUS" if by != "gpu" else "UUID",
            "GPU TIME",
            "ENERGY",
            "UTIL",
            "PEAK MEM",
            "RESERVED",
            "IDLE RESERVED",
            "LAST SEEN",
        ]
    ]
    for r in rows:
        ident = {
            "container": [r.host or "-", r.container or "-", r.image or "-"],
            "image": [r.image or "-", r.host or "(several)"],
            "host": [r.host or "-"],
            "gpu": [r.host or "-", r.gpus[0].split(":", 1)[0] if r.gpus else "-"],
        }[by]
        gpus = (
            (r.gpus[0].split(":", 1)[1] if r.gpus else "-")
            if by == "gpu"
            else (",".join(r.gpus) or "-")
        )
        out.append(
            [
                *ident,
                gpus,
                hours(r.gpu_seconds),
                f"{r.energy_wh:.1f} Wh",
                "-" if r.mean_utilization_percent is None else f"{r.mean_utilization_percent:.0f}%",
                "-" if r.peak_memory_bytes is None else size(r.peak_memory_bytes),
                hours(r.reserved_gpu_seconds),
                hours(r.idle_reserved_gpu_seconds),
                (iso(r.last_seen) or "-").replace("T", " "),
            ]
        )
    return out
