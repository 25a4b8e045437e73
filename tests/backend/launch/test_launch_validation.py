"""LaunchSpec validation, create requests and pre-flight checks, without an engine.

These are the answers a user gets while filling in the launch form: every bad field at once,
each named with its fix, and the container request exactly as the user asked.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from gpuconsole.backend.errors import BuildFailed, LaunchRejected
from gpuconsole.backend.gpu.models import GpuSample, GpuSnapshot, GpuSourceState
from gpuconsole.backend.launch import LaunchSpec, parse_gpus, parse_size, validate
from gpuconsole.backend.launch.build_variant import (
    BaseFacts,
    derived_tag,
    parse_facts,
    variant_dockerfile,
)
from gpuconsole.backend.launch.create import build_create_request
from gpuconsole.backend.launch.preflight import image_cuda_version, preflight_findings
from gpuconsole.backend.launch.sizes import SizeError
from gpuconsole.backend.launch.validate import EngineFacts
from gpuconsole.backend.models import GpuRequest

UUID0 = "GPU-8e0c1111-2222-3333-4444-555566667777"
UUID1 = "GPU-9f1d1111-2222-3333-4444-555566667777"


def two_gpus() -> GpuSnapshot:
    gpus = tuple(
        GpuSample(i, uuid, "NVIDIA H100 80GB HBM3", 0, 80 * 2**30)
        for i, uuid in enumerate((UUID0, UUID1))
    )
    return GpuSnapshot("local", "test", GpuSourceState.OK, time.time(), gpus)


def facts(**kw: object) -> EngineFacts:
    base: dict[str, object] = {
        "host": "local",
        "local": False,  # no bind tests against this machine's ports
        "cpus": 16,
        "memory_bytes": 64 * 2**30,
        "image_present": True,
    }
    base.update(kw)
    return EngineFacts(**base)  # type: ignore[arg-type]


def spec(tmp_path: Path, **kw: object) -> LaunchSpec:
    values: dict[str, object] = {
        "image": "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime",
        "volumes": (f"{tmp_path}:/workspace",),
    }
    values.update(kw)
    return LaunchSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512m", 512 * 2**20),
        ("32g", 32 * 2**30),
        ("32GB", 32 * 2**30),
        ("1.5GiB", 1536 * 2**20),
        ("8G", 8 * 2**30),
        ("1024", 1024),
        (" 2t ", 2 * 2**40),
    ],
)
def test_sizes_read_like_docker(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["12XB", "", "g", "-1g", "1.5", "32 gigs", "1e9"])
def test_bad_sizes_are_refused_with_the_accepted_units(text: str) -> None:
    with pytest.raises(SizeError, match=re.escape("512m, 32g, 1.5GiB")):
        parse_size(text)


def test_gpu_selection_forms() -> None:
    assert parse_gpus("all").all and parse_gpus("all").visible_devices == "all"
    assert parse_gpus("none").none and parse_gpus("none").visible_devices == "void"
    assert parse_gpus("").none
    assert parse_gpus("0,1").ids == ("0", "1")
    assert parse_gpus("device=1").ids == ("1",)
    assert parse_gpus(f"{UUID0}").visible_devices == UUID0
    with pytest.raises(ValueError, match="indices like 0,1"):
        parse_gpus("first")


def test_every_bad_field_is_reported_at_once(tmp_path: Path) -> None:
    bad = spec(
        tmp_path,
        variant="jupyter",
        name="bad name!",
        memory="12XB",
        cpus="99",
        shm_size="lots",
        gpus="0,7",
        ulimits=("nofile=10:5",),
        volumes=("relative-no-colon",),
        env=("JUPYTER_TOKEN=mine",),
        port="70000",
        labels=("gpuconsole.variant=x",),
        workdir="work",
    )
    check = validate(bad, facts(), two_gpus())
    assert not check.ok and check.plan is None
    fields = [f for f, _ in check.errors]
    assert fields == [
        "name",
        "gpus",
        "memory",
        "cpus",
        "shm_size",
        "ulimits",
        "volumes",
        "env",
        "labels",
        "workdir",
        "port",
    ]
    messages = dict(check.errors)
    assert "GPU 7 is not on host 'local'" in messages["gpus"]
    assert "0 (NVIDIA H100 80GB HBM3)" in messages["gpus"]
    assert "16 CPUs" in messages["cpus"]
    with pytest.raises(LaunchRejected) as info:
        check.raise_for_errors()
    assert "memory: '12XB' has an unknown unit" in str(info.value)


def test_specific_gpus_refused_when_the_host_reports_none(tmp_path: Path) -> None:
    unavailable = GpuSnapshot(
        "local", "none", GpuSourceState.UNAVAILABLE, time.time(), error="no NVIDIA driver"
    )
    check = validate(spec(tmp_path, gpus="0"), facts(), unavailable)
    (message,) = [m for f, m in check.errors if f == "gpus"]
    assert "reports no GPUs (no NVIDIA driver)" in message and "use all or none" in message
    # all / none need no telemetry
    assert validate(spec(tmp_path, gpus="all"), facts(), unavailable).ok
    assert validate(spec(tmp_path, gpus="none"), facts(), None).ok


def test_defaults_resolved_for_jupyter(tmp_path: Path) -> None:
    check = validate(spec(tmp_path), facts(names=frozenset({"jupyter-x-1"})), None)
    plan = check.raise_for_errors()
    assert plan.shm_size_bytes == 8 * 2**30
    assert {(u.name, u.soft, u.hard) for u in plan.ulimits} == {
        ("memlock", -1, -1),
        ("stack", 67108864, 67108864),
    }
    assert plan.bind == "127.0.0.1" and plan.container_port == 8888
    assert plan.host_port == 8888  # first of the familiar range, nothing publishes it
    assert plan.name.startswith("jupyter-") and plan.name.endswith("-1")
    assert not plan.ipc_host
    plain = validate(spec(tmp_path, variant="plain"), facts(), None).raise_for_errors()
    assert plain.shm_size_bytes is None and plain.host_port is None


def test_user_ulimit_overrides_default_by_name(tmp_path: Path) -> None:
    plan = validate(spec(tmp_path, ulimits=("memlock=1024",)), facts()).raise_for_errors()
    assert {(u.name, u.soft) for u in plan.ulimits} == {("memlock", 1024), ("stack", 67108864)}


def test_generated_name_skips_taken_ones(tmp_path: Path) -> None:
    import getpass

    user = getpass.getuser()
    taken = frozenset({f"ssh-{user}-1", f"ssh-{user}-2"})
    key = tmp_path / "k.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDummy test\n")
    plan = validate(spec(tmp_path, variant="ssh", ssh_key=str(key)), facts(names=taken))
    assert plan.raise_for_errors().name == f"ssh-{user}-3"


def test_port_published_by_a_container_is_refused_and_skipped(tmp_path: Path) -> None:
    published = {("127.0.0.1", 8888): "someone-elses", ("0.0.0.0", 8889): "wide"}
    check = validate(spec(tmp_path, port=8888), facts(published=published))
    assert check.errors == (
        (
            "port",
            "127.0.0.1:8888 is already published by container 'someone-elses' — pick "
            "another, or leave it empty for a free one",
        ),
    )
    plan = validate(spec(tmp_path), facts(published=published)).raise_for_errors()
    assert plan.host_port == 8890


def test_missing_mount_source_is_flagged_for_creation(tmp_path: Path) -> None:
    missing = tmp_path / "notebooks"
    check = validate(spec(tmp_path, volumes=(f"{missing}:/nb",)), facts(local=True))
    assert check.missing_sources == (str(missing),)
    assert "does not exist" in dict(check.errors)["volumes"]


def test_volume_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    plan = validate(
        spec(tmp_path, volumes=("~/data:/data:ro", "cache:/root/.cache")), facts(local=True)
    ).raise_for_errors()
    ro, named = plan.volumes
    assert ro.source == str(tmp_path / "data") and ro.read_only and not ro.named
    assert named.named and named.source == "cache"


def test_warnings_for_latest_missing_tag_and_no_volume(tmp_path: Path) -> None:
    check = validate(spec(tmp_path, image="pytorch/pytorch", volumes=()), facts())
    assert check.ok
    texts = {w.field: w.message for w in check.warnings}
    assert "has no tag" in texts["image"] and "no volume mounted" in texts["volumes"]
    latest = validate(spec(tmp_path, image="x/y:latest"), facts(image_present=False))
    image_warnings = [w.message for w in latest.warnings if w.field == "image"]
    assert any("'latest' tag" in m for m in image_warnings)
    assert any("pulling it" in m for m in image_warnings)
    assert not [w for w in validate(spec(tmp_path), facts()).warnings]


def test_ssh_variant_needs_a_public_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    check = validate(spec(tmp_path, variant="ssh"), facts())
    assert "ssh-keygen -t ed25519" in dict(check.errors)["ssh_key"]
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa.pub").write_text("ssh-rsa AAAAB3Nza user@host\n")
    plan = validate(spec(tmp_path, variant="ssh"), facts()).raise_for_errors()
    assert plan.ssh_public_key == "ssh-rsa AAAAB3Nza user@host"
    assert "user" in dict(validate(spec(tmp_path, variant="ssh", user="bob"), facts()).errors)


def test_create_request_gpus_both_ways(tmp_path: Path) -> None:
    for gpus, requests, visible in (
        ("all", [{"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]]}], "all"),
        (
            "0,1",
            [{"Driver": "", "Count": 0, "DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]]}],
            "0,1",
        ),
        ("none", None, "void"),
    ):
        plan = validate(spec(tmp_path, gpus=gpus), facts(), two_gpus()).raise_for_errors()
        req = build_create_request(plan, "t0ken")
        assert req.host_config.get("device_requests") == requests
        assert req.environment["NVIDIA_VISIBLE_DEVICES"] == visible


def test_jupyter_token_only_in_environment(tmp_path: Path) -> None:
    plan = validate(spec(tmp_path), facts()).raise_for_errors()
    req = build_create_request(plan, "s3cr3t-token")
    assert req.environment["JUPYTER_TOKEN"] == "s3cr3t-token"
    assert req.command is not None
    assert not any("s3cr3t-token" in part for part in req.command)
    assert not any("token=" in part.lower() for part in req.command)
    assert "s3cr3t-token" not in str(req.labels)
    assert req.host_config["port_bindings"] == {8888: ("127.0.0.1", 8888)}
    assert req.labels["gpuconsole.variant"] == "jupyter"
    assert req.labels["gpuconsole.port"] == "8888"


def test_preflight_findings() -> None:
    no_runtime = preflight_findings(parse_gpus("all"), engine_info={"Runtimes": {}}, machine=None)
    assert [f.code for f in no_runtime] == ["no-nvidia-runtime"]
    assert "nvidia-container-toolkit" in no_runtime[0].fix
    assert not preflight_findings(parse_gpus("none"), engine_info={}, machine=None)

    image = {"Config": {"Env": ["PATH=/usr/bin", "CUDA_VERSION=12.8.1"]}}
    assert image_cuda_version(image) == (12, 8)
    findings = preflight_findings(
        parse_gpus("0,1"),
        engine_info={"Runtimes": {"nvidia": {}}},
        machine=None,
        image_attrs=image,
        cuda_driver=12040,
        other_requests={"train": GpuRequest(device_ids=("1",)), "other": GpuRequest(all=True)},
        gpu_snapshot=two_gpus(),
        used_by={"0": "container 'train'"},
    )
    by_code = {f.code: f for f in findings}
    assert set(by_code) == {"cuda-too-new", "gpu-reserved", "gpu-busy"}
    assert by_code["cuda-too-new"].severity == "warning"  # 12.8 on a 12.4 driver: minor
    assert "CUDA 12.8" in by_code["cuda-too-new"].message
    reserved = [f.message for f in findings if f.code == "gpu-reserved"]
    assert "GPU 0,1 also reserved by container 'other'" in reserved
    assert "GPU 1 also reserved by container 'train'" in reserved
    major = preflight_findings(
        parse_gpus("all"),
        engine_info={"Runtimes": {"nvidia": {}}},
        machine=None,
        image_attrs={"Config": {"Labels": {"com.nvidia.cuda.version": "13.0"}}},
        cuda_driver=12080,
    )
    assert [(f.code, f.severity) for f in major] == [("cuda-too-new", "error")]


def test_derived_tags_are_semantic() -> None:
    assert (
        derived_tag("pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime", "ssh")
        == "gpuconsole/pytorch-ssh:2.6.0-cuda12.4-cudnn9-runtime"
    )
    assert derived_tag("debian:bookworm", "ssh") == "gpuconsole/debian-ssh:bookworm"
    assert derived_tag("localhost:5000/team/nb", "jupyter") == "gpuconsole/nb-jupyter:latest"


def test_dockerfiles_install_only_what_is_missing() -> None:
    facts_apt = parse_facts("pm=apt\nos=debian\n")
    ssh = variant_dockerfile("debian:bookworm", "ssh", facts_apt)
    assert "openssh-server" in ssh and "useradd -m -s /bin/bash aiuser" in ssh
    assert "PasswordAuthentication no" in ssh and "PermitRootLogin no" in ssh
    with_sshd = variant_dockerfile("x:1", "ssh", BaseFacts("apt", sshd=True))
    assert "apt-get" not in with_sshd
    pip = variant_dockerfile("x:1", "jupyter", BaseFacts("apt", pip=True))
    assert "pip install --no-cache-dir jupyterlab" in pip
    apt = variant_dockerfile("x:1", "jupyter", BaseFacts("apt"))
    assert "jupyter-notebook" in apt and "pip" not in apt.split("CMD")[0]
    with pytest.raises(BuildFailed, match="Debian/Ubuntu"):
        variant_dockerfile("alpine:3", "ssh", parse_facts("pm=apk\nos=alpine\n"))


@pytest.mark.parametrize("cpus", ["nan", "inf", "-1", "0", "1e-12", "0.001"])
def test_cpus_that_docker_would_misread_are_refused(tmp_path: Path, cpus: str) -> None:
    # nan/inf crashed the conversion; tiny values round to NanoCpus=0, i.e. no limit at all.
    check = validate(spec(tmp_path, cpus=cpus), facts())
    assert "cpus" in dict(check.errors)
    assert check.plan is None
