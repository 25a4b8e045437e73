"""Series from a recording for the console's graphs: one GPU over a window (the GPU screen's
1 h / 24 h / 7 d zoom) and one container over its lifetime (its details).

Each series has one value per bucket (None where nothing was recorded), computed from the same
sums the reports use: mean power = joules / seconds, mean utilization = utilization-seconds /
seconds, memory = the bucket's peak.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

Values = tuple[float | None, ...]


@dataclass(frozen=True, slots=True)
class History:
    start: float
    end: float
    memory: Values
    utilization: Values
    power: Values

    @property
    def empty(self) -> bool:
        return all(v is None for v in self.power) and all(v is None for v in self.memory)


def _buckets(
    rows: list[tuple[float, float, float, float, float, float | None]],
    start: float,
    end: float,
    count: int,
) -> History:
    """rows: (t, wall seconds, joules, utilization-seconds, their seconds, peak memory) ->
    per-bucket series: power = joules / wall seconds, utilization = util-s / its seconds."""
    width = max((end - start) / count, 1e-9)
    wall = [0.0] * count
    joules = [0.0] * count
    util = [0.0] * count
    util_den = [0.0] * count
    memory: list[float | None] = [None] * count
    for t, dt, energy, util_s, util_dt, mem in rows:
        i = min(count - 1, max(0, int((t - start) / width)))
        wall[i] += dt
        joules[i] += energy
        util[i] += util_s
        util_den[i] += util_dt
        if mem is not None:
            memory[i] = max(memory[i] or 0.0, float(mem))
    return History(
        start,
        end,
        tuple(memory),
        tuple(util[i] / util_den[i] if util_den[i] else None for i in range(count)),
        tuple(joules[i] / wall[i] if wall[i] else None for i in range(count)),
    )


def gpu_history(
    db: sqlite3.Connection, host: str, uuid: str, start: float, end: float, count: int
) -> History:
    """One GPU from ``start`` to ``end`` in ``count`` buckets."""
    found = db.execute("SELECT id FROM gpus WHERE host = ? AND uuid = ?", (host, uuid)).fetchone()
    if found is None:
        return _buckets([], start, end, count)
    # By the GPU's id, not a join: the id and the time range reach both tables behind the
    # view gpu_samples (its per-GPU table then reads one range of its key).
    rows = db.execute(
        """
        SELECT t, dt, energy_j, coalesce(util, 0) * dt,
               CASE WHEN util IS NULL THEN 0 ELSE dt END, mem_used
        FROM gpu_samples WHERE gpu = :gpu AND t >= :start AND t <= :end
        UNION ALL
        SELECT minute * 60 + 30, seconds, energy_j, util_seconds, util_dt, mem_max
        FROM gpu_minutes
        WHERE gpu = :gpu AND minute >= :start_minute AND minute <= :end_minute
        """,
        {
            "gpu": found[0],
            "start": start,
            "end": end,
            "start_minute": int(start // 60),
            "end_minute": int(end // 60),
        },
    ).fetchall()
    return _buckets(rows, start, end, count)


def container_history(
    db: sqlite3.Connection, host: str, container_id: str, count: int
) -> History | None:
    """One container's GPU use over its recorded lifetime, all its GPUs together (its power and
    memory summed over them, its utilization over the GPU time it used), or None if never
    recorded."""
    found = db.execute(
        "SELECT id FROM owners WHERE host = ? AND container_id = ?", (host, container_id)
    ).fetchone()
    if found is None:
        return None
    # By the owner's id, not a join: it reaches both tables behind the view owner_samples.
    params = {"owner": found[0]}
    span = db.execute(
        """
        SELECT min(first_t), max(last_t) FROM (
            SELECT min(t) AS first_t, max(t) AS last_t FROM owner_samples WHERE owner = :owner
            UNION ALL
            SELECT min(first_t), max(last_t) FROM owner_minutes WHERE owner = :owner)
        """,
        params,
    ).fetchone()
    if span is None or span[0] is None:
        return None
    start, end = float(span[0]), float(span[1])
    # Per moment across its GPUs: the wall time once, energy and memory summed.
    rows = db.execute(
        """
        SELECT t, max(dt), sum(energy_j), sum(util_seconds), sum(gpu_seconds), sum(mem_used)
        FROM owner_samples WHERE owner = :owner GROUP BY t
        UNION ALL
        SELECT (min(first_t) + max(last_t)) / 2, max(seconds), sum(energy_j), sum(util_seconds),
               sum(gpu_seconds), sum(mem_max)
        FROM owner_minutes WHERE owner = :owner GROUP BY minute
        """,
        params,
    ).fetchall()
    return _buckets(rows, start, max(end, start + 1.0), count)
