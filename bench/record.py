"""The GPU recorder (``gpuconsole record``): its cost with a fleet, its accuracy, its file.

    eval "$(scripts/dev-env)" && .venv/bin/python -m bench.record [--seconds 60] [--hosts 10]

Needs the development services of scripts/dev-env (the test dockerd, the loopback sshd's config
and keys). The bench starts its own sshd (bench.remote's Rig) whose sessions get the stand-in
nvidia-smi with 8 GPUs replaying one steady H100 reading at 350 W, 100 %, 20 GiB.

1. Accuracy: one host, one real busybox container whose PID the stand-in lists on GPU 0;
   ``record --interval 1`` for 15 s, then ``usage --json``: the container's energy / GPU time
   (target: within 10 % of 350 W) and its GPU time against the wall time it was recorded.
2. Cost: ``record --all-hosts`` over N SSH hosts x 8 GPUs at 1 Hz (10 x 8 = 80 GPUs): after 15 s
   to settle, the recorder's own CPU (/proc/PID/stat) over --seconds (target: <= 1 % of a core),
   its RSS, and how much the file grew, per GPU-day (page count x page size, WAL included).
   The hosts' engine is a dockerd of the bench's own with a few idle containers (as a GPU host
   has), not the shared dev engine: every test suite running beside the bench starts and
   removes containers there all the time, and all N "hosts" would see every one of them, so the
   figure would measure the neighbours' churn times N. ``--shared-engine`` measures against
   the dev engine all the same (root and dockerd are needed for the bench's own; without them
   the bench says so and uses the dev engine).
3. The peer, in the same run and for as long: the usual way to log a fleet's GPUs, one
   ``ssh HOST nvidia-smi --query-gpu=... -lms 1000`` per host appending CSV to a file — the CPU
   of those ssh clients and the bytes logged per GPU-day (a CSV nothing can query by container).

Every "remote" process (sshd, the stand-ins, the bench's dockerd) runs on this machine and is
not counted for either side. Prints one table; exits 1 if a target is missed. The container
carries gpuconsole-bench=1 and is removed at the end, with the sshd, the bench's dockerd and the
temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.remote import ALIAS, LABEL, Rig
from bench.tmuxpane import cpu_seconds, print_targets

H100 = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gpu" / "h100"
UUID = (H100 / "nvidia-smi-apps-busy.csv").read_text().split(",")[-1].strip()
WATTS = 350.0
GPUS_PER_HOST = 8
QUERY = "index,uuid,name,memory.used,memory.total,utilization.gpu,power.draw,temperature.gpu"
#: Idle containers on the bench's own engine (what a GPU host runs beside its GPU jobs).
QUIET_CONTAINERS = 4


def say(text: str) -> None:
    print(f"[bench.record] {text}", file=sys.stderr, flush=True)


def steady(path: Path) -> Path:
    row = json.loads((H100 / "nvml-recording-h100.jsonl").open().readline())
    row.update(power_mw=int(WATTS * 1000), util_gpu=100, mem_used=20 << 30, uuid=UUID)
    path.write_text(json.dumps(row) + "\n")
    return path


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def db_bytes(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)
    finally:
        db.close()


def start_recorder(rig: Rig, config: Path, db: Path, *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        rig.gpuconsole(config, "record", "--db", str(db), "--interval", "1", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=rig.env(),
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if not first.startswith("recording"):
        process.kill()
        raise SystemExit(f"the recorder did not start: {first}{process.stderr.read()}")
    return process


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    if process.returncode != 0:
        raise SystemExit(f"the recorder failed ({process.returncode}): {err}")
    return out


def accuracy(rig: Rig, tmp: Path, rows: list[list[object]]) -> None:
    config = rig.config("one", [("h0", rig.port)])
    db = tmp / "accuracy.sqlite"
    recorder = start_recorder(rig, config, db, "--host", "h0")
    started = time.time()
    time.sleep(15)
    stop(recorder)
    wall = time.time() - started
    report = subprocess.run(
        rig.gpuconsole(config, "usage", "--db", str(db), "--json"),
        capture_output=True,
        text=True,
        env=rig.env(),
        check=True,
    )
    (row,) = [r for r in json.loads(report.stdout) if r["container"] == "gpcbench-held"]
    watts = row["energy_wh"] * 3600 / row["gpu_seconds"]
    rows.append(
        [
            "15 s, one container on a 350 W H100: energy / GPU time",
            f"{watts:.1f} W",
            "-",
            abs(watts - WATTS) <= 0.10 * WATTS,
        ]
    )
    rows.append(
        [
            "  its GPU time against the wall time recorded",
            f"{row['gpu_seconds']:.1f} s of {wall:.1f} s",
            "-",
            None,
        ]
    )


class QuietEngine:
    """A dockerd of the bench's own (its own network namespace, as tests/private_engine.py),
    with the test image and a few idle containers: what the N hosts' engine looks like."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def unusable() -> str | None:
        if os.geteuid() != 0:
            return "not root"
        if not (shutil.which("dockerd") or Path("/usr/sbin/dockerd").exists()):
            return "no dockerd"
        if shutil.which("unshare") is None:
            return "no unshare"
        return None

    def start(self, image: str, containers: int) -> None:
        import docker

        self.root.mkdir(parents=True)
        log = (self.root / "dockerd.log").open("ab")
        self.proc = subprocess.Popen(
            [
                *("unshare", "--net", shutil.which("dockerd") or "/usr/sbin/dockerd"),
                *("--host", f"unix://{self.socket}", "--data-root", str(self.root / "data")),
                *("--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "pid")),
                *("--iptables=false", "--ip6tables=false"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                docker.APIClient(base_url=f"unix://{self.socket}", version="auto", timeout=2)
                break
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"the bench's dockerd did not start: {self.root}") from None
                time.sleep(0.2)
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "-H", f"unix://{self.socket}", "load", "-q"],
            stdin=save.stdout,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        save.wait()
        client = docker.DockerClient(base_url=f"unix://{self.socket}", version="auto")
        try:
            for i in range(containers):
                client.containers.run(
                    image,
                    ["sleep", "86400"],
                    name=f"idle-{i}",
                    detach=True,
                    network_mode="none",
                    labels={LABEL: "1"},
                )
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        import docker

        try:  # removed first: dockerd would wait on each `sleep` to stop
            client = docker.DockerClient(base_url=f"unix://{self.socket}", version="auto")
            for c in client.containers.list(all=True):
                c.remove(force=True)
            client.close()
        except Exception as exc:
            say(f"removing the bench engine's containers failed: {exc}")
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cost(
    rig: Rig,
    tmp: Path,
    hosts: int,
    seconds: float,
    rows: list[list[object]],
    engine: str,
) -> None:
    names = [(f"h{i}", rig.port) for i in range(hosts)]
    config = rig.config("fleet", names)
    db = tmp / "fleet.sqlite"
    gpus = hosts * GPUS_PER_HOST
    recorder = start_recorder(rig, config, db, "--all-hosts")
    time.sleep(15)
    size0, cpu0, t0 = db_bytes(db), cpu_seconds(recorder.pid), time.monotonic()
    time.sleep(seconds)
    size1, cpu1, t1 = db_bytes(db), cpu_seconds(recorder.pid), time.monotonic()
    rss = rss_mib(recorder.pid)
    stop(recorder)
    cpu = (cpu1 - cpu0) / (t1 - t0) * 100
    per_day = (size1 - size0) / (gpus * (t1 - t0)) * 86400

    # The peer: one streaming nvidia-smi per host over ssh, appending CSV.
    log = tmp / "peer.csv"
    peers = []
    with log.open("w") as sink:
        for _ in names:
            peers.append(
                subprocess.Popen(
                    [
                        "ssh",
                        ALIAS,
                        "nvidia-smi",
                        f"--query-gpu={QUERY}",
                        "--format=csv,noheader,nounits",
                        "-lms",
                        "1000",
                    ],
                    stdout=sink,
                    stderr=subprocess.DEVNULL,
                    env=rig.env(docker_cli=True),
                )
            )
        time.sleep(15)
        peer0 = sum(cpu_seconds(p.pid) for p in peers)
        log0, p0 = log.stat().st_size, time.monotonic()
        time.sleep(seconds)
        peer1 = sum(cpu_seconds(p.pid) for p in peers)
        log1, p1 = log.stat().st_size, time.monotonic()
        for p in peers:
            p.terminate()
            p.wait(10)
    peer_cpu = (peer1 - peer0) / (p1 - p0) * 100
    peer_day = (log1 - log0) / (gpus * (p1 - p0)) * 86400
    rows.append(
        [
            f"{hosts} hosts x {GPUS_PER_HOST} GPUs at 1 Hz: client CPU (% of a core)",
            f"{cpu:.2f} %",
            f"{peer_cpu:.2f} % ({hosts} ssh nvidia-smi -lms)",
            cpu <= 1.0,
        ]
    )
    rows.append(["  the engine behind every host", engine, "-", None])
    rows.append(["  RSS of the recorder", f"{rss:.0f} MiB", "-", None])
    rows.append(
        [
            "  file growth per GPU-day (raw, full resolution)",
            f"{per_day / 2**20:.1f} MiB",
            f"{peer_day / 2**20:.1f} MiB of CSV",
            None,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument(
        "--shared-engine",
        action="store_true",
        help="cost against the dev engine (its containers and every test's churn, seen N times)",
    )
    args = parser.parse_args()
    import docker

    client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", ""), version="auto")
    with tempfile.TemporaryDirectory(prefix="bench-record-", ignore_cleanup_errors=True) as tmpdir:
        tmp = Path(tmpdir)
        apps = tmp / "apps.csv"
        image = os.environ.get("GPUCONSOLE_TEST_IMAGE", "gpuconsole-test/busybox:1")
        quiet: QuietEngine | None = None
        held = client.containers.run(
            image,
            ["sleep", "3600"],
            name="gpcbench-held",
            detach=True,
            labels={LABEL: "1"},
        )
        rig = Rig(tmp)
        try:
            held.reload()
            apps.write_text(f"{held.attrs['State']['Pid']}, python3, 20480, {UUID}\n")
            rig.start_sshd(
                env={
                    "GPUCONSOLE_SMI_STUB_RECORDING": str(steady(tmp / "steady.jsonl")),
                    "GPUCONSOLE_SMI_STUB_GPUS": str(GPUS_PER_HOST),
                    "GPUCONSOLE_SMI_STUB_APPS": str(apps),
                }
            )
            rows: list[list[object]] = []
            say("accuracy: 15 s of one host")
            accuracy(rig, tmp, rows)
            why = "--shared-engine" if args.shared_engine else QuietEngine.unusable()
            if why is None:
                quiet = QuietEngine(tmp / "engine")
                say(f"the hosts' engine: a dockerd of the bench's own, {QUIET_CONTAINERS} idle")
                quiet.start(image, QUIET_CONTAINERS)
                rig.socket_path = str(quiet.socket)
                engine = f"the bench's own dockerd, {QUIET_CONTAINERS} idle containers"
            else:
                running = len(client.containers.list())
                engine = f"the dev engine, shared ({running} running; {why})"
            say(f"cost: {args.hosts} hosts, {args.seconds:.0f} s each for the recorder and peer")
            cost(rig, tmp, args.hosts, args.seconds, rows, engine)
        finally:
            if quiet is not None:
                quiet.stop()
            rig.stop()
            held.remove(force=True)
            client.close()
    print_targets(["measure", "gpuconsole record", "peer", "target met"], rows)
    return 0 if all(r[-1] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
