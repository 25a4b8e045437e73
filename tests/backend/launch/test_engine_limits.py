"""Adaptive defaults: which limits the engine can set, probed once per host, and what a launch
does with a default (left out, with a note) or a typed value (refused) that the engine cannot
apply. The probe's verdict is checked against the engine itself (``memlock_refused``)."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from gpuconsole.backend.launch import LaunchProgress, LaunchSpec, check_launch, launch
from gpuconsole.backend.launch.defaults import resolve_shm, resolve_ulimits
from gpuconsole.backend.launch.engine_limits import (
    EngineLimits,
    engine_limits,
    forget_engine_limits,
    parse_probe,
    refused_rlimit,
)
from gpuconsole.backend.launch.spec import Ulimit

from support import TEST_IMAGE, TEST_LABEL, host_at

GIB = 1024**3


def proc_block(
    pid: int,
    comm: str,
    how: str,
    *,
    memlock: str = "8388608",
    stack: str = "unlimited",
    nofile: str = "20000",
    cap_eff: str = "000001fffeffffff",  # bit 24 (CAP_SYS_RESOURCE) cleared, as in a container
    uid_map: str = "0          0 4294967295",
) -> str:
    """One process as PROBE_SCRIPT prints it (rows as /proc/PID/limits has them)."""
    return "\n".join(
        [
            f"proc {pid} {comm} {how}",
            "limit Max cpu time              unlimited            unlimited            seconds",
            f"limit Max stack size            8388608              {stack:<20} bytes",
            f"limit Max open files            1024                 {nofile:<20} files",
            f"limit Max locked memory         {memlock:<20} {memlock:<20} bytes",
            f"status CapEff:\t{cap_eff}",
            f"uidmap          {uid_map}",
        ]
    )


def probe_text(*blocks: str, nr_open: int = 1048576) -> str:
    return "\n".join([*blocks, f"nr_open {nr_open}"]) + "\n"


ROOT_CAPS = "000001ffffffffff"
IN_A_CONTAINER = probe_text(
    proc_block(9303, "dockerd", "socket"), proc_block(9319, "containerd", "runtime")
)


# -- the probe's output, read --------------------------------------------------------------


def test_an_engine_without_cap_sys_resource_can_set_up_to_its_own_hard_limits() -> None:
    limits = parse_probe(IN_A_CONTAINER)
    assert limits.known and limits.exact and not limits.can_raise
    assert limits.source == "dockerd (pid 9303), containerd (pid 9319)"
    assert limits.ceiling("memlock") == 8388608
    assert limits.ceiling("stack") == -1  # its hard stack limit is unlimited: 64 MiB is fine
    assert limits.refusal(Ulimit("stack", 67108864, 67108864), "local") is None
    assert limits.refusal(Ulimit("memlock", 8388608, 8388608), "local") is None
    why = limits.refusal(Ulimit("memlock", -1, -1), "local")
    assert why == (
        "the engine of host 'local' may not raise locked memory above 8 MiB "
        "(it runs without CAP_SYS_RESOURCE, e.g. inside a container or LXC)"
    )


def test_an_engine_with_the_capability_can_set_anything_but_more_files_than_the_kernel() -> None:
    limits = parse_probe(probe_text(proc_block(1, "dockerd", "only", cap_eff=ROOT_CAPS)))
    assert limits.can_raise and limits.exact
    assert limits.refusal(Ulimit("memlock", -1, -1), "gpu1") is None
    assert limits.refusal(Ulimit("nofile", 1048576, 1048576), "gpu1") is None
    why = limits.refusal(Ulimit("nofile", 2000000, 2000000), "gpu1")
    assert why == "the kernel of host 'gpu1' allows at most 1048576 open files (fs.nr_open)"
    assert limits.fix(Ulimit("nofile", 2000000, 2000000)).endswith("or raise fs.nr_open")


def test_the_lowest_limit_of_the_engines_processes_wins() -> None:
    limits = parse_probe(
        probe_text(
            proc_block(10, "dockerd", "socket", memlock="67108864"),
            proc_block(11, "containerd", "runtime", memlock="65536"),
        )
    )
    assert limits.ceiling("memlock") == 65536


def test_every_capability_in_a_user_namespace_is_still_none() -> None:
    """Rootless Docker and unprivileged LXC: full CapEff, but in their own user namespace."""
    text = probe_text(proc_block(7, "dockerd", "only", cap_eff=ROOT_CAPS, uid_map="0 1000 1"))
    limits = parse_probe(text)
    assert not limits.can_raise and "user namespace" in limits.why
    rootless = parse_probe(
        probe_text(proc_block(7, "dockerd", "only", cap_eff=ROOT_CAPS)), rootless=True
    )
    assert not rootless.can_raise and "rootless" in rootless.why


def test_no_engine_process_seen_means_unknown_and_nothing_is_refused() -> None:
    limits = parse_probe("nr_open 1048576\n")
    assert not limits.known
    assert limits.refusal(Ulimit("memlock", -1, -1), "far") is None
    choice = resolve_ulimits((), limits, "far")
    assert {u.name for u in choice.ulimits} == {"memlock", "stack"} and not choice.notes


def test_runc_names_the_limit_it_could_not_set() -> None:
    error = (
        "OCI runtime create failed: container_linux.go:380: starting container process caused: "
        "error setting rlimit type 8: operation not permitted: unknown"
    )
    assert refused_rlimit(error) == "memlock"
    assert refused_rlimit("Error setting rlimit type 99: x") == ""
    assert refused_rlimit("port is already allocated") is None


# -- defaults fitted to the engine ---------------------------------------------------------


def test_a_default_the_engine_cannot_set_is_left_out_with_a_note() -> None:
    choice = resolve_ulimits((), parse_probe(IN_A_CONTAINER), "local")
    assert not choice.errors
    assert [(u.name, u.soft) for u in choice.ulimits] == [("stack", 67108864)]
    assert choice.default_texts() == ("stack=67108864",)
    (note,) = choice.notes
    assert note.field == "ulimits"
    assert note.message.startswith("left out the default ulimit memlock=-1: the engine of host")


def test_a_typed_value_the_engine_cannot_set_is_an_error_naming_the_fix() -> None:
    choice = resolve_ulimits(
        ("memlock=-1", "nofile=4096:8192"), parse_probe(IN_A_CONTAINER), "local"
    )
    (error,) = choice.errors
    assert error.startswith("memlock=-1: the engine of host 'local' may not raise locked memory")
    assert (
        "use memlock=8388608 or less, leave memlock out, or give the engine CAP_SYS_RESOURCE"
        in error
    )
    assert not choice.notes, "no note about a default the user replaced"


def test_a_typed_value_within_the_engines_limit_is_kept_over_the_default() -> None:
    choice = resolve_ulimits(("memlock=4096",), parse_probe(IN_A_CONTAINER), "local")
    assert not choice.errors and not choice.notes
    assert {(u.name, u.soft) for u in choice.ulimits} == {("memlock", 4096), ("stack", 67108864)}
    assert choice.defaulted == ("stack",)


def test_a_guessed_engine_process_leaves_defaults_out_but_refuses_nothing_typed() -> None:
    """Two dockerds and none is known to serve the socket: a default stays safe, the user's
    own value goes to the engine (which has the last word)."""
    limits = parse_probe(
        probe_text(proc_block(5, "dockerd", "guess"), proc_block(6, "dockerd", "guess"))
    )
    assert limits.known and not limits.exact
    assert resolve_ulimits(("memlock=-1",), limits, "h").errors == ()
    assert resolve_ulimits((), limits, "h").notes


def test_the_default_shm_size_is_lowered_to_half_a_small_hosts_memory() -> None:
    small = resolve_shm(None, "jupyter", 4 * GIB, "tiny")
    assert small.size == 2 * GIB
    (note,) = small.notes
    assert note.message.startswith("lowered the default shm size 8g to 2g: host 'tiny' has 4.0 GiB")
    assert resolve_shm(None, "jupyter", 32 * GIB, "big").size == 8 * GIB
    assert resolve_shm(None, "plain", 4 * GIB, "tiny").size is None
    assert resolve_shm("1g", "jupyter", 4 * GIB, "tiny").size == GIB


def test_a_typed_shm_size_above_the_hosts_memory_is_refused() -> None:
    (error,) = resolve_shm("64g", "jupyter", 4 * GIB, "tiny").errors
    assert error == "'64g' is more than host 'tiny' has (4.0 GiB) — ask for less, e.g. 2g"


# -- against the real engine ---------------------------------------------------------------


class CountingMachine:
    """The host's machine, counting the commands run through it (the probe is one)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.commands: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def run(self, argv: Sequence[str], timeout: float, *, stdin: bytes | None = None) -> str:
        self.commands.append(argv[0])
        result: str = self._inner.run(argv, timeout, stdin=stdin)
        return result


def test_the_probe_agrees_with_the_engine(local_host: Any, memlock_refused: bool) -> None:
    limits = engine_limits(local_host, local_host.api().info())
    assert limits.known and limits.exact, limits
    assert limits.source.startswith("dockerd (pid ")
    refused = limits.refusal(Ulimit("memlock", -1, -1), "local") is not None
    assert refused == memlock_refused


def test_the_probe_runs_once_per_host() -> None:
    host = host_at()
    counting = CountingMachine(host.engine.machine)
    host.engine.machine = counting
    try:
        for _ in range(3):  # a form re-checks on every keystroke
            check_launch(host.engine, LaunchSpec(variant="plain", image=TEST_IMAGE))
        assert counting.commands == ["sh"]
        forget_engine_limits(host.engine)  # what a start refused on a limit does
        check_launch(host.engine, LaunchSpec(variant="plain", image=TEST_IMAGE))
        assert counting.commands == ["sh", "sh"]
    finally:
        host.close()
    other = host_at()
    other.engine.machine = counting
    try:
        check_launch(other.engine, LaunchSpec(variant="plain", image=TEST_IMAGE))
        assert counting.commands == ["sh", "sh", "sh"], "another host is probed for itself"
    finally:
        other.close()


def test_the_probe_over_ssh_reads_the_same_engine_in_one_command(
    ssh_home: Any, local_host: Any
) -> None:
    """The loopback SSH host's socket is the test engine's: the same verdict, one exec."""
    from sshfixtures import loop_host

    here = engine_limits(local_host, local_host.api().info())
    host = loop_host(gpu=False)
    try:
        info = host.engine.api().info()
        before = host.machine.execs
        there = engine_limits(host.engine, info)
        assert host.machine.execs == before + 1
        assert engine_limits(host.engine, info) is there
        assert host.machine.execs == before + 1, "cached: no second command"
        assert there.exact and there.source.startswith("dockerd (pid ")
        assert (there.can_raise, dict(there.hard)) == (here.can_raise, dict(here.hard))
    finally:
        host.close()


def test_a_default_the_runtime_refuses_anyway_is_dropped_and_the_launch_comes_up(
    local_host: Any, docker_client: Any, memlock_refused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the probe cannot see the engine (unknown), the defaults go to the engine as
    planned; the one the runtime refuses is dropped and the container created again."""
    if not memlock_refused:
        pytest.skip("this engine sets memlock=-1 (it has CAP_SYS_RESOURCE): nothing to drop")
    # The module (the package exports a function of the same name).
    validate = importlib.import_module("gpuconsole.backend.launch.validate")
    monkeypatch.setattr(validate, "engine_limits", lambda host, info: EngineLimits())
    label = f"gpct-run={uuid.uuid4().hex}"
    spec = LaunchSpec(
        variant="plain",
        image=TEST_IMAGE,
        labels=(label, f"{TEST_LABEL}=1"),
        command=("sleep", "600"),
    )
    seen: list[LaunchProgress] = []
    result = launch(local_host, spec, on_progress=seen.append, timeout=10)
    try:
        (note,) = result.notes
        assert note.startswith("left out the default ulimit memlock=-1: the engine of host 'local'")
        assert [p.stage for p in seen].count("create") == 2
        attrs = docker_client.api.inspect_container(result.id)
        assert {u["Name"] for u in attrs["HostConfig"]["Ulimits"]} == {"stack"}
        assert attrs["Config"]["Labels"]["gpuconsole.notes"] == note
        assert attrs["State"]["Running"]
        # Only the relaunched container is left.
        assert [
            c.id for c in docker_client.containers.list(all=True, filters={"label": label})
        ] == [result.id]
    finally:
        docker_client.api.remove_container(result.id, force=True)
