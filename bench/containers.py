"""Full-refresh cost of gpuconsole against the docker CLI, measured in the same run.

    python -m bench.containers [--sizes 10 100] [--repeat 5] [--image IMAGE]

Starts N idle busybox containers on the engine in DOCKER_HOST, then times:
  - gpuconsole: one full refresh (list + CPU % + memory for every container + GPU requests),
    steady state, as the console does it every tick;
  - gpuconsole (cold): the first refresh of a new process, which also inspects each container
    once for its GPU requests;
  - `docker stats --no-stream` (what you would run for the same numbers);
  - `docker ps` (the list alone, no figures).
Prints a table of medians and ratios, and removes the containers it started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

LABEL = "gpuconsole-bench"


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def start_containers(client: object, image: str, n: int) -> list[object]:
    run_id = uuid.uuid4().hex[:6]

    def one(i: int) -> object:
        return client.containers.run(  # type: ignore[attr-defined]
            image,
            ["sleep", "86400"],
            name=f"bench-{run_id}-{i}",
            detach=True,
            labels={LABEL: "1"},
            network_mode="none",
        )

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def remove_all(client: object) -> None:
    for c in client.containers.list(all=True, filters={"label": LABEL}):  # type: ignore[attr-defined]
        c.remove(force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--image", default=os.environ.get("GPUCONSOLE_TEST_IMAGE", "gpuconsole-test/busybox:1")
    )
    args = parser.parse_args()

    import docker

    from gpuconsole.backend.docker.engine import default_docker_host
    from gpuconsole.backend.hosts.open import local_host

    url = default_docker_host()
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        raise SystemExit("the docker CLI is needed for the comparison (apt-get install docker.io)")
    client = docker.DockerClient(base_url=url, version="auto", timeout=120)
    env = {**os.environ, "DOCKER_HOST": url}

    def cli(*argv: str) -> None:
        subprocess.run([docker_cli, *argv], env=env, check=True, stdout=subprocess.DEVNULL)

    rows = []
    try:
        remove_all(client)
        for n in args.sizes:
            start_containers(client, args.image, n)
            time.sleep(1.0)
            cold_host = local_host(url, gpu=False).engine
            start = time.perf_counter()
            cold_host.snapshot(all=True)
            cold = time.perf_counter() - start
            cold_host.close()

            host = local_host(url, gpu=False).engine
            host.snapshot(all=True)
            snap = host.snapshot(all=True)
            assert len(snap.stats) >= n and all(
                s.cpu_percent is not None for s in snap.stats.values()
            ), "every running container must have a measured CPU %"
            ours = timed(partial(host.snapshot, all=True), args.repeat)
            stats_cli = timed(lambda: cli("stats", "--no-stream"), max(1, args.repeat // 2))
            ps_cli = timed(lambda: cli("ps"), args.repeat)
            host.close()
            rows.append((n, ours, cold, stats_cli, ps_cli))
            remove_all(client)
    finally:
        remove_all(client)
        client.close()

    engine = docker.APIClient(base_url=url, version="auto").version()
    print(
        f"engine {engine.get('Version')} at {url}; {os.cpu_count()} CPUs; "
        f"median of {args.repeat} runs"
    )
    header = (
        "N",
        "gpuconsole refresh",
        "gpuconsole cold",
        "docker stats --no-stream",
        "docker ps",
        "stats / gpuconsole",
        "ps / gpuconsole",
    )
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for n, ours, cold, stats_cli, ps_cli in rows:
        print(
            f"{n} | {ours * 1000:.1f} ms | {cold * 1000:.1f} ms | {stats_cli * 1000:.0f} ms | "
            f"{ps_cli * 1000:.1f} ms | {stats_cli / ours:.1f}x | {ps_cli / ours:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
