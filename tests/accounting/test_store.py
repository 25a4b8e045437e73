"""The recording file: rollups that equal their samples, one writer at a time, a kill -9 that
loses at most the batch in flight, and ``usage`` on what is (or is not) there."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gpuconsole.accounting.meter import GpuInterval, OwnerInterval
from gpuconsole.accounting.report import usage
from gpuconsole.accounting.store import RecorderBusy, Writer, open_for_reading

from support import run_cli

T0 = 1_795_000_000.0  # a minute boundary
NAMES = {("h", "c1"): ("trainer", "pytorch:2.6"), ("h", "c2"): ("notebook", "jupyter:1")}


def batch(t: float, dt: float = 10.0) -> tuple[list[GpuInterval], list[OwnerInterval]]:
    """Two GPUs: GPU-a shared by c1 (3/4) and c2 (1/4) at 400 W; GPU-b reserved by c2, idle."""
    util = 80.0 if int(t) % 120 < 60 else 20.0
    gpus = [
        GpuInterval(
            "h", "GPU-a", 0, "H100", t, dt, 400.0 * dt, util, 40 << 30, 80 << 30, 400.0, 60
        ),
        GpuInterval("h", "GPU-b", 1, "H100", t, dt, 70.0 * dt, 0.0, 0, 80 << 30, 70.0, 35),
    ]
    owners = [
        OwnerInterval(
            "h",
            "c1",
            "GPU-a",
            t,
            dt,
            dt * 0.75,
            400 * dt * 0.75,
            util * dt * 0.75,
            30 << 30,
            dt,
            0.0,
        ),
        OwnerInterval(
            "h",
            "c2",
            "GPU-a",
            t,
            dt,
            dt * 0.25,
            400 * dt * 0.25,
            util * dt * 0.25,
            int(t) % (10 << 30),
            0.0,
            0.0,
        ),
        OwnerInterval("h", "c2", "GPU-b", t, dt, 0.0, 0.0, 0.0, None, dt, dt),
    ]
    return gpus, owners


def fill(writer: Writer, hours: float) -> float:
    t = T0
    while t < T0 + hours * 3600:
        t += 10.0
        writer.write(*batch(t), NAMES)
    return t


def report(path: Path, by: str) -> list:
    db = open_for_reading(path)
    try:
        return usage(db, since=0, until=T0 + 10 * 3600, by=by)
    finally:
        db.close()


@pytest.mark.parametrize("by", ["container", "image", "host", "gpu"])
def test_rollups_equal_the_sum_of_their_samples(tmp_path: Path, by: str) -> None:
    path = tmp_path / "usage.sqlite"
    writer = Writer(path)
    end = fill(writer, 3)
    before = report(path, by)
    writer.rollup(end, keep_raw_s=3600)  # two of the three hours become minute rows
    after = report(path, by)
    db = sqlite3.connect(path)
    raw_left = db.execute("SELECT min(t) FROM gpu_samples").fetchone()[0]
    minutes = db.execute("SELECT count(*) FROM gpu_minutes").fetchone()[0]
    db.close()
    writer.close()
    assert raw_left >= end - 3600 - 60 and minutes == 2 * 120  # 2 GPUs x 120 minutes
    assert len(before) == len(after) > 0
    for b, a in zip(before, after, strict=True):
        assert (a.host, a.container, a.image, a.gpus) == (b.host, b.container, b.image, b.gpus)
        for field in (
            "gpu_seconds",
            "energy_wh",
            "reserved_gpu_seconds",
            "idle_reserved_gpu_seconds",
        ):
            assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-9), field
        if b.mean_utilization_percent is None:
            assert a.mean_utilization_percent is None
        else:
            assert a.mean_utilization_percent == pytest.approx(b.mean_utilization_percent)
        assert a.peak_memory_bytes == b.peak_memory_bytes
        tolerance = 60 if by == "gpu" else 0  # a GPU's minute row starts at its minute
        assert abs(a.first_seen - b.first_seen) <= tolerance and a.last_seen == b.last_seen
    if by == "container":
        trainer = next(r for r in after if r.container == "trainer")
        assert trainer.gpu_seconds == pytest.approx(0.75 * 3 * 3600)
        assert trainer.energy_wh == pytest.approx(0.75 * 400 * 3)
        assert trainer.mean_utilization_percent == pytest.approx(50.0)
        notebook = next(r for r in after if r.container == "notebook")
        assert notebook.gpus == ("0", "1") and notebook.idle_reserved_gpu_seconds == 3 * 3600


def test_old_minute_rows_go_after_90_days(tmp_path: Path) -> None:
    writer = Writer(tmp_path / "u.sqlite")
    end = fill(writer, 0.5)
    writer.rollup(end + 91 * 86400)
    db = sqlite3.connect(tmp_path / "u.sqlite")
    counts = [
        db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("gpu_samples", "gpu_minutes", "owner_samples", "owner_minutes")
    ]
    db.close()
    writer.close()
    assert counts == [0, 0, 0, 0]


def test_one_recorder_per_file(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite"
    first = Writer(path)
    with pytest.raises(RecorderBusy, match=f"another recorder \\(pid {os.getpid()}\\)"):
        Writer(path)
    second = run_cli("record", "--db", str(path), timeout=60)  # a real second recorder
    assert second.returncode == 1
    assert f"another recorder (pid {os.getpid()}) is writing {path}" in second.stderr
    assert "recording" not in second.stdout
    first.close()
    Writer(path).close()  # free again once the first has gone
    assert oct(path.stat().st_mode & 0o777) == "0o600"


WRITER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    from pathlib import Path
    from test_store import NAMES, batch
    from gpuconsole.accounting.store import Writer
    writer = Writer(Path(sys.argv[1]))
    t = 1_795_000_000.0
    n = 0
    while True:
        t += 1.0
        writer.write(*batch(t, 1.0), NAMES)
        n += 1
        print(n, flush=True)
    """
)


def test_kill_9_mid_write_leaves_a_readable_recording(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            str(path),
            str(Path(__file__).parent),
            str(Path(__file__).parent.parent),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    committed = 0
    while committed < 300:
        committed = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.wait()
    # The writer may have run ahead of our reading: what it said last is in the pipe.
    said = [int(line) for line in child.stdout.read().split()]
    committed = max([committed, *said])
    db = open_for_reading(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    batches = db.execute("SELECT count(*) FROM gpu_samples").fetchone()[0] // 2
    db.close()
    assert batches >= committed  # everything it said was committed is there (at most one more)
    assert batches <= committed + 1
    Writer(path).close()  # the dead recorder's lock went with it


def test_usage_says_when_there_is_nothing(tmp_path: Path) -> None:
    missing = run_cli("usage", "--db", str(tmp_path / "none.sqlite"), timeout=60)
    assert missing.returncode == 1
    assert "no GPU recording at" in missing.stderr and "gpuconsole record" in missing.stderr
    Writer(tmp_path / "empty.sqlite").close()
    empty = run_cli("usage", "--db", str(tmp_path / "empty.sqlite"), "--json", timeout=60)
    assert empty.returncode == 0 and empty.stdout.strip() == "[]"
    assert "holds no GPU samples yet" in empty.stderr
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_text("not a database")
    bad = run_cli("usage", "--db", str(garbage), timeout=60)
    assert bad.returncode == 1 and "is not a gpuconsole recording" in bad.stderr
    since = run_cli("usage", "--db", str(tmp_path / "empty.sqlite"), "--since", "yesterday")
    assert since.returncode == 2 and "e.g. 24h, 7d" in since.stderr


def test_history_series_for_the_graphs_before_and_after_rollup(tmp_path: Path) -> None:
    from gpuconsole.accounting.history import container_history, gpu_history

    path = tmp_path / "usage.sqlite"
    writer = Writer(path)
    end = fill(writer, 2)

    def read() -> tuple:
        db = open_for_reading(path)
        try:
            return (
                gpu_history(db, "h", "GPU-a", T0, end, 12),
                container_history(db, "h", "c1", 4),
                container_history(db, "h", "c2", 4),
                container_history(db, "h", "never", 4),
            )
        finally:
            db.close()

    # As the recorder commits them (the recent table), once moved to the per-GPU table, and
    # once rolled up into minutes: the same graphs.
    for when in ("recent", "settled", "rolled up"):
        gpu, c1, c2, never = read()
        assert gpu.power == pytest.approx((400.0,) * 12), when  # 10-minute buckets
        assert gpu.utilization == pytest.approx((50.0,) * 12, rel=0.02), when  # 80 % / 20 %
        assert gpu.memory == (float(40 << 30),) * 12
        assert c1 is not None and c1.start == T0 + 10 and c1.end == end
        assert c1.power == pytest.approx((300.0,) * 4, rel=0.01), when  # 3/4 of 400 W
        assert c1.utilization == pytest.approx((50.0,) * 4, rel=0.01), when
        assert c1.memory == (float(30 << 30),) * 4
        assert c2 is not None and c2.power == pytest.approx((100.0,) * 4, rel=0.01), when
        assert never is None
        if when == "recent":
            writer.settle()
        else:
            writer.rollup(end, keep_raw_s=0)  # everything into minute rows
    writer.close()


def many_gpus(t: float, count: int) -> list[GpuInterval]:
    return [
        GpuInterval("h", f"GPU-{i}", i, "H100", t, 1.0, 350.0, 90.0, 20 << 30, 80 << 30, 350.0, 60)
        for i in range(count)
    ]


def many_owners(t: float, count: int) -> list[OwnerInterval]:
    """``count`` GPUs held two by two by containers."""
    return [
        OwnerInterval("h", f"c{i // 2}", f"GPU-{i}", t, 1.0, 1.0, 350.0, 90.0, 20 << 30, 1.0, 0.0)
        for i in range(count)
    ]


def test_a_second_of_80_gpus_writes_a_few_pages_not_one_per_gpu(tmp_path: Path) -> None:
    """The recorder commits every second for months: 80 GPUs' and 80 holders' rows must not
    rewrite a page per GPU and per holder each time (~200 pages, 0.8 MiB a second, 70 GiB a day
    of disk writes); appended, they take about what their ~10 KiB of rows fill."""
    path = tmp_path / "usage.sqlite"
    writer = Writer(path)
    for second in range(600):  # ten minutes of history, settled into the per-GPU table
        writer.write(many_gpus(T0 + second, 80), many_owners(T0 + second, 80), {})
    writer.settle()
    writer.db.execute("PRAGMA wal_autocheckpoint = 0")
    writer.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rounds = 60
    for second in range(600, 600 + rounds):
        writer.write(many_gpus(T0 + second, 80), many_owners(T0 + second, 80), {})
    page = writer.db.execute("PRAGMA page_size").fetchone()[0]
    frames = (Path(f"{path}-wal").stat().st_size - 32) / (page + 24)
    writer.close()
    assert frames / rounds <= 16, f"{frames / rounds:.1f} pages written per commit"
    db = open_for_reading(path)
    try:
        count, energy = db.execute("SELECT count(*), sum(energy_j) FROM gpu_samples").fetchone()
        held = db.execute("SELECT count(*), sum(gpu_seconds) FROM owner_samples").fetchone()
    finally:
        db.close()
    assert count == 80 * (600 + rounds) and energy == pytest.approx(350.0 * count)
    assert held == (count, pytest.approx(count))


#: What schema 1 (gpuconsole before recent rows had tables of their own) created for raw rows.
SCHEMA_1_SAMPLES = """
CREATE TABLE gpu_samples (
    gpu INTEGER NOT NULL, t REAL NOT NULL, dt REAL NOT NULL, energy_j REAL NOT NULL,
    util REAL, mem_used INTEGER, power_w REAL, temp_c INTEGER,
    PRIMARY KEY (gpu, t)) WITHOUT ROWID;
CREATE TABLE owner_samples (
    owner INTEGER NOT NULL, gpu INTEGER NOT NULL, t REAL NOT NULL, dt REAL NOT NULL,
    gpu_seconds REAL NOT NULL, energy_j REAL NOT NULL, util_seconds REAL NOT NULL,
    mem_used INTEGER, reserved_seconds REAL NOT NULL, idle_reserved_seconds REAL NOT NULL,
    PRIMARY KEY (owner, gpu, t)) WITHOUT ROWID;
CREATE INDEX owner_samples_t ON owner_samples (t);
"""


def schema_1_recording(path: Path) -> None:
    """A recording as schema 1 wrote it: its other tables are schema 2's."""
    from gpuconsole.accounting import store

    head = store.SCHEMA.split("CREATE TABLE IF NOT EXISTS gpu_by_gpu")[0]  # meta, gpus, owners
    minutes = store.SCHEMA[store.SCHEMA.index("CREATE TABLE IF NOT EXISTS gpu_minutes") :]
    db = sqlite3.connect(path)
    db.executescript(head + SCHEMA_1_SAMPLES + minutes)
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.execute("INSERT INTO gpus VALUES (1, 'h', 'GPU-a', 0, 'H100', ?)", (80 << 30,))
    db.execute("INSERT INTO owners VALUES (1, 'h', 'c1', 'trainer', 'pytorch:2.6')")
    for i in range(1, 361):
        t = T0 + 10 * i
        db.execute("INSERT INTO gpu_samples VALUES (1, ?, 10, 4000, 80, 0, 400, 60)", (t,))
        db.execute("INSERT INTO owner_samples VALUES (1, 1, ?, 10, 10, 4000, 800, 0, 10, 0)", (t,))
    db.commit()
    db.close()


def test_a_schema_1_recording_is_read_then_migrated_without_losing_a_row(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite"
    schema_1_recording(path)
    (before,) = report(path, "container")  # read as it is
    writer = Writer(path)  # the recorder starts on it: it becomes schema 2
    writer.write(many_gpus(T0 + 3700, 1), [], {})
    writer.close()
    db = sqlite3.connect(path)
    try:
        version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
        kind = db.execute("SELECT type FROM sqlite_master WHERE name = 'gpu_samples'").fetchone()
        kept = db.execute("SELECT count(*) FROM gpu_by_gpu WHERE gpu = 1").fetchone()[0]
        owned = db.execute("SELECT count(*) FROM owner_by_owner").fetchone()[0]
        views = db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name LIKE '%_samples'"
        ).fetchone()[0]
    finally:
        db.close()
    (after,) = report(path, "container")
    assert (version, kind[0], kept, owned, views) == ("2", "view", 360, 360, 2)
    assert before.container == after.container == "trainer"
    assert before.gpu_seconds == after.gpu_seconds == 3600
    assert before.energy_wh == pytest.approx(after.energy_wh) and after.energy_wh == 400
