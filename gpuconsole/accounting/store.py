"""The recording: SQLite (WAL) — every interval for a day, then one row a minute for 90 days.

Rows hold sums (seconds, joules, utilization x seconds) and maxima, never means, so a minute
rollup is exactly the sum of the samples it replaces and a report is one SUM over both tables.
The writer commits every batch (one sampling round): a ``kill -9`` loses at most the round in
flight, and WAL keeps the file readable by ``usage`` and the console while the recorder writes.

A round's rows go to ``gpu_recent`` and ``owner_recent``, keyed by time first, so a commit
appends to the end of a B-tree (2-3 pages). Keyed by GPU (or owner) first, as the history of one
GPU wants them, every commit rewrote one page per GPU: with 80 GPUs, 1.6 ms of CPU and ~0.5 MiB
written to the WAL per second (40 GiB a day of writes for 4 MiB of data). Every few minutes
(``Writer.settle``) the recent rows move to ``gpu_by_gpu`` and ``owner_by_owner`` in one
transaction, each GPU's page written once for hundreds of rows. Readers see both through the
views ``gpu_samples`` and ``owner_samples`` (what schema 1 called its tables, so a reader of
either schema reads the same SQL).

One writer per file: a lock beside it (``flock``, released by the kernel when the recorder dies)
makes a second recorder refuse with the first one's PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from gpuconsole.accounting.meter import HOST_OWNER, GpuInterval, OwnerInterval
from gpuconsole.backend.errors import GpuconsoleError

SCHEMA_VERSION = "2"
#: Schemas this version reads (1: ``gpu_samples`` was a table; a writer migrates it).
READABLE_SCHEMAS = frozenset({"1", "2"})
#: Raw intervals are kept this long, then rolled up into minutes.
KEEP_RAW_S = 24 * 3600.0
#: Minute rows are kept this long.
KEEP_MINUTES_S = 90 * 24 * 3600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gpus (
    id INTEGER PRIMARY KEY, host TEXT NOT NULL, uuid TEXT NOT NULL, gpu_index INTEGER,
    name TEXT, memory_total INTEGER, UNIQUE (host, uuid));
CREATE TABLE IF NOT EXISTS owners (
    id INTEGER PRIMARY KEY, host TEXT NOT NULL, container_id TEXT NOT NULL, name TEXT,
    image TEXT, UNIQUE (host, container_id));
CREATE TABLE IF NOT EXISTS gpu_by_gpu (
    gpu INTEGER NOT NULL, t REAL NOT NULL, dt REAL NOT NULL, energy_j REAL NOT NULL,
    util REAL, mem_used INTEGER, power_w REAL, temp_c INTEGER,
    PRIMARY KEY (gpu, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gpu_recent (
    gpu INTEGER NOT NULL, t REAL NOT NULL, dt REAL NOT NULL, energy_j REAL NOT NULL,
    util REAL, mem_used INTEGER, power_w REAL, temp_c INTEGER,
    PRIMARY KEY (t, gpu)) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS gpu_samples AS
    SELECT * FROM gpu_by_gpu UNION ALL SELECT * FROM gpu_recent;
CREATE TABLE IF NOT EXISTS owner_by_owner (
    owner INTEGER NOT NULL, gpu INTEGER NOT NULL, t REAL NOT NULL, dt REAL NOT NULL,
    gpu_seconds REAL NOT NULL, energy_j REAL NOT NULL, util_seconds REAL NOT NULL,
    mem_used INTEGER, reserved_seconds REAL NOT NULL, idle_reserved_seconds REAL NOT NULL,
    PRIMARY KEY (owner, gpu, t)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS owner_samples_t ON owner_by_owner (t);
CREATE TABLE IF NOT EXISTS owner_recent (
    owner INTEGER NOT NULL, gpu INTEGER NOT NULL, t REAL NOT NULL, dt REAL NOT NULL,
    gpu_seconds REAL NOT NULL, energy_j REAL NOT NULL, util_seconds REAL NOT NULL,
    mem_used INTEGER, reserved_seconds REAL NOT NULL, idle_reserved_seconds REAL NOT NULL,
    PRIMARY KEY (t, owner, gpu)) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS owner_samples AS
    SELECT * FROM owner_by_owner UNION ALL SELECT * FROM owner_recent;
CREATE TABLE IF NOT EXISTS gpu_minutes (
    gpu INTEGER NOT NULL, minute INTEGER NOT NULL, seconds REAL NOT NULL,
    energy_j REAL NOT NULL, util_seconds REAL NOT NULL, util_dt REAL NOT NULL,
    mem_max INTEGER, power_max REAL, temp_max INTEGER, samples INTEGER NOT NULL,
    PRIMARY KEY (gpu, minute)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owner_minutes (
    owner INTEGER NOT NULL, gpu INTEGER NOT NULL, minute INTEGER NOT NULL,
    seconds REAL NOT NULL, gpu_seconds REAL NOT NULL, energy_j REAL NOT NULL,
    util_seconds REAL NOT NULL, mem_max INTEGER, reserved_seconds REAL NOT NULL,
    idle_reserved_seconds REAL NOT NULL, first_t REAL NOT NULL, last_t REAL NOT NULL,
    PRIMARY KEY (owner, gpu, minute)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS owner_minutes_minute ON owner_minutes (minute);
"""

#: Recent GPU rows join the per-GPU table (see the module's notes).
SETTLE = """
INSERT OR REPLACE INTO gpu_by_gpu SELECT * FROM gpu_recent;
DELETE FROM gpu_recent;
INSERT OR REPLACE INTO owner_by_owner SELECT * FROM owner_recent;
DELETE FROM owner_recent;
"""

#: Schema 1's table of raw GPU rows becomes schema 2's per-GPU table (same columns and key).
MIGRATE_1 = """
ALTER TABLE gpu_samples RENAME TO gpu_by_gpu;
ALTER TABLE owner_samples RENAME TO owner_by_owner;
"""

ROLLUP = """
INSERT INTO gpu_minutes
SELECT gpu, CAST(t / 60 AS INTEGER), sum(dt), sum(energy_j), sum(coalesce(util, 0) * dt),
       sum(CASE WHEN util IS NULL THEN 0 ELSE dt END), max(mem_used), max(power_w),
       max(temp_c), count(*)
FROM gpu_samples WHERE t < :cut GROUP BY gpu, CAST(t / 60 AS INTEGER)
ON CONFLICT (gpu, minute) DO UPDATE SET
    seconds = seconds + excluded.seconds, energy_j = energy_j + excluded.energy_j,
    util_seconds = util_seconds + excluded.util_seconds, util_dt = util_dt + excluded.util_dt,
    mem_max = max(coalesce(mem_max, excluded.mem_max), coalesce(excluded.mem_max, mem_max)),
    power_max = max(coalesce(power_max, excluded.power_max),
                    coalesce(excluded.power_max, power_max)),
    temp_max = max(coalesce(temp_max, excluded.temp_max), coalesce(excluded.temp_max, temp_max)),
    samples = samples + excluded.samples;
INSERT INTO owner_minutes
SELECT owner, gpu, CAST(t / 60 AS INTEGER), sum(dt), sum(gpu_seconds), sum(energy_j),
       sum(util_seconds), max(mem_used), sum(reserved_seconds), sum(idle_reserved_seconds),
       min(t), max(t)
FROM owner_samples WHERE t < :cut GROUP BY owner, gpu, CAST(t / 60 AS INTEGER)
ON CONFLICT (owner, gpu, minute) DO UPDATE SET
    seconds = seconds + excluded.seconds, gpu_seconds = gpu_seconds + excluded.gpu_seconds,
    energy_j = energy_j + excluded.energy_j, util_seconds = util_seconds + excluded.util_seconds,
    mem_max = max(coalesce(mem_max, excluded.mem_max), coalesce(excluded.mem_max, mem_max)),
    reserved_seconds = reserved_seconds + excluded.reserved_seconds,
    idle_reserved_seconds = idle_reserved_seconds + excluded.idle_reserved_seconds,
    first_t = min(first_t, excluded.first_t), last_t = max(last_t, excluded.last_t);
DELETE FROM gpu_by_gpu WHERE t < :cut;
DELETE FROM gpu_recent WHERE t < :cut;
DELETE FROM owner_by_owner WHERE t < :cut;
DELETE FROM owner_recent WHERE t < :cut;
DELETE FROM gpu_minutes WHERE minute < :drop;
DELETE FROM owner_minutes WHERE minute < :drop;
"""


def recording_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--db``, else ``$GPUCONSOLE_DB``, else usage.sqlite in the platform's data directory."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("GPUCONSOLE_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("gpuconsole")) / "usage.sqlite"


class RecordingError(GpuconsoleError):
    """The recording cannot be opened, written or read; the message says what to do."""


class RecorderBusy(RecordingError):
    pass


class NoRecording(RecordingError):
    pass


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    if read_only:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False)
    else:
        db = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 10000")
    return db


def open_for_reading(path: Path) -> sqlite3.Connection:
    """The recording as ``usage`` and the console read it (never created here)."""
    if not path.is_file():
        raise NoRecording(
            f"no GPU recording at {path} — start one with `gpuconsole record` (or point --db "
            "at one)"
        )
    try:
        db = _connect(path, read_only=True)
        version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise RecordingError(f"{path} is not a gpuconsole recording: {exc}") from exc
    if version is None or version[0] not in READABLE_SCHEMAS:
        raise RecordingError(f"{path} was written by another gpuconsole version (schema {version})")
    return db


class Writer:
    """The one writer of a recording: holds its lock, caches ids, commits batches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._take_lock(path)
        try:
            fresh = not path.exists()
            if fresh:  # 0600 from the start: who used which GPUs is nobody else's business
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            self.db = _connect(path, read_only=False)
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
            self.db.executescript(SCHEMA)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            found = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if found[0] == SCHEMA_VERSION:
                self.settle()  # rows a killed recorder left recent
        except sqlite3.DatabaseError as exc:
            self.close()
            raise RecordingError(
                f"cannot record into {path}: {exc} — give another --db path"
            ) from exc
        if found[0] != SCHEMA_VERSION:
            self.close()
            raise RecordingError(f"{path} was written by another gpuconsole version")
        self._gpu_ids: dict[tuple[str, str], int] = {}
        self._owner_ids: dict[tuple[str, str], int] = {}
        self._named: dict[tuple[str, str], tuple[str, str]] = {}

    def _migrate(self) -> None:
        """A schema 1 recording becomes schema 2 in one transaction (its rows kept as they are)."""
        db = self.db
        has_meta = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if has_meta is None:
            return
        found = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if found is None or found[0] != "1":
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATE_1.split(";"):
                if statement.strip():
                    db.execute(statement)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def _take_lock(path: Path) -> int:
        lock_path = path.with_name(path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RecorderBusy(
                f"another recorder (pid {holder}) is writing {path} — stop it first, or record "
                "into another --db"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _gpu_id(
        self,
        row: GpuInterval | OwnerInterval,
        index: int = -1,
        name: str = "",
        memory_total: int | None = None,
    ) -> int:
        key = (row.host, row.uuid)
        found = self._gpu_ids.get(key)
        if found is None:
            self.db.execute(
                "INSERT INTO gpus (host, uuid, gpu_index, name, memory_total) VALUES (?,?,?,?,?) "
                "ON CONFLICT (host, uuid) DO UPDATE SET gpu_index = excluded.gpu_index, "
                "name = excluded.name, memory_total = coalesce(excluded.memory_total, "
                "memory_total)",
                (row.host, row.uuid, index, name, memory_total),
            )
            found = int(
                self.db.execute("SELECT id FROM gpus WHERE host = ? AND uuid = ?", key).fetchone()[
                    0
                ]
            )
            self._gpu_ids[key] = found
        return found

    def _owner_id(
        self, host: str, owner: str, names: Mapping[tuple[str, str], tuple[str, str]]
    ) -> int:
        """The owner's row; its name and image are kept current when the engine told them (a
        container seen once by id only keeps the name it had)."""
        key = (host, owner)
        label = names.get(key)
        found = self._owner_ids.get(key)
        if found is not None and (label is None or self._named.get(key) == label):
            return found
        if label is not None:
            self.db.execute(
                "INSERT INTO owners (host, container_id, name, image) VALUES (?,?,?,?) "
                "ON CONFLICT (host, container_id) DO UPDATE SET name = excluded.name, "
                "image = excluded.image",
                (host, owner, *label),
            )
            self._named[key] = label
        else:
            placeholder = "(host processes)" if owner == HOST_OWNER else owner[:12]
            self.db.execute(
                "INSERT OR IGNORE INTO owners (host, container_id, name, image) VALUES (?,?,?,'')",
                (host, owner, placeholder),
            )
        found = int(
            self.db.execute(
                "SELECT id FROM owners WHERE host = ? AND container_id = ?", key
            ).fetchone()[0]
        )
        self._owner_ids[key] = found
        return found

    def write(
        self,
        gpus: Iterable[GpuInterval],
        owners: Iterable[OwnerInterval],
        names: Mapping[tuple[str, str], tuple[str, str]] | None = None,
    ) -> None:
        """One batch in one transaction. ``names``: (host, container id) -> (name, image)."""
        names = names or {}
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO gpu_recent VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        self._gpu_id(g, g.index, g.name, g.memory_total),
                        g.t,
                        g.dt,
                        g.energy_j,
                        g.utilization,
                        g.memory_used,
                        g.power_w,
                        g.temperature_c,
                    )
                    for g in gpus
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO owner_recent VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        self._owner_id(o.host, o.owner, names),
                        self._gpu_id(o),
                        o.t,
                        o.dt,
                        o.gpu_seconds,
                        o.energy_j,
                        o.util_seconds,
                        o.memory_used,
                        o.reserved_seconds,
                        o.idle_reserved_seconds,
                    )
                    for o in owners
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def rollup(
        self, now: float, keep_raw_s: float = KEEP_RAW_S, keep_minutes_s: float = KEEP_MINUTES_S
    ) -> None:
        """Raw intervals older than ``keep_raw_s`` become minute rows (whole minutes only);
        minute rows older than ``keep_minutes_s`` go."""
        cut = (now - keep_raw_s) // 60 * 60
        drop = int((now - keep_minutes_s) // 60)
        self._script(SETTLE + ROLLUP, {"cut": cut, "drop": drop})

    def settle(self) -> None:
        """The recent GPU rows join the per-GPU table (every few minutes; see the module)."""
        self._script(SETTLE, {})

    def _script(self, script: str, params: Mapping[str, object]) -> None:
        db = self.db
        db.execute("BEGIN")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement, params)
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
