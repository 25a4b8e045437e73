"""Property tests for the engine's JSON -> models (gpuconsole/backend/docker/parse.py).

What the engine sends in the shape Docker documents (any names, ports, labels, mounts,
environment, limits, GPU requests) round-trips into the models; optional fields may be missing
or null; an answer of the wrong shape raises EngineAnswerError (a GpuconsoleError naming the
answer, which the console shows as that host's error) — never anything else, never a hang.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gpuconsole.backend.docker.parse import (
    EngineAnswerError,
    details_from_inspect,
    gpu_request_from_host_config,
    stats_from_api,
    summary_from_list,
)
from gpuconsole.backend.models import GpuRequest, Mount, PortMapping

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: What a malformed answer may raise out of parse.py.
PARSE_ERRORS = (EngineAnswerError,)

container_id = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
name = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,30}", fullmatch=True)
text = st.text(max_size=30)
label_key = st.text(min_size=1, max_size=20)
port_number = st.integers(1, 65535)
protocol = st.sampled_from(["tcp", "udp", "sctp"])
ip = st.sampled_from(["0.0.0.0", "127.0.0.1", "::", "192.168.1.7"])


@st.composite
def list_port(draw: st.DrawFn) -> dict[str, Any]:
    port: dict[str, Any] = {"PrivatePort": draw(port_number), "Type": draw(protocol)}
    if draw(st.booleans()):
        port["IP"] = draw(ip)
        port["PublicPort"] = draw(port_number)
    return port


@st.composite
def engine_mount(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["bind", "volume", "tmpfs"]))
    mount: dict[str, Any] = {
        "Type": kind,
        "Destination": "/" + draw(name),
        "RW": draw(st.booleans()),
    }
    if kind == "volume":
        mount["Name"] = draw(name)
        mount["Source"] = draw(st.sampled_from(["", "/var/lib/docker/volumes/x/_data"]))
    else:
        mount["Source"] = "/" + draw(name)
    return mount


@st.composite
def list_entry(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "Id": draw(container_id),
        "Names": ["/" + draw(name)],
        "Image": draw(text),
        "State": draw(st.sampled_from(["running", "exited", "created", "paused", "dead"])),
        "Status": draw(text),
        "Created": draw(st.integers(0, 2**34)),
        "Ports": draw(st.lists(list_port(), max_size=4)),
        "Labels": draw(st.dictionaries(label_key, text, max_size=4)),
        "Mounts": draw(st.lists(engine_mount(), max_size=3)),
        "Command": draw(text),
    }


@st.composite
def device_requests(draw: st.DrawFn) -> tuple[list[dict[str, Any]], GpuRequest]:
    """DeviceRequests as ``docker run --gpus`` writes them, and what they ask for."""
    kind = draw(st.sampled_from(["none", "all", "count", "ids"]))
    caps = [["gpu"]]
    if kind == "none":
        return [], GpuRequest()
    if kind == "all":
        return [{"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": caps}], GpuRequest(
            all=True
        )
    if kind == "count":
        n = draw(st.integers(1, 16))
        return [{"Driver": "", "Count": n, "Capabilities": caps}], GpuRequest(count=n)
    ids = draw(st.lists(st.sampled_from(["0", "1", "2", "3", "GPU-abc"]), min_size=1, max_size=4))
    return [{"Driver": "nvidia", "Count": 0, "DeviceIDs": ids, "Capabilities": caps}], GpuRequest(
        device_ids=tuple(ids)
    )


env_pair = st.tuples(st.from_regex(r"[A-Z_][A-Z0-9_]{0,15}", fullmatch=True), text)
ulimit = st.tuples(
    st.sampled_from(["memlock", "stack", "nofile"]),
    st.integers(-1, 2**40),
    st.integers(-1, 2**40),
)


@st.composite
def inspect_answer(draw: st.DrawFn) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    for number, proto in draw(st.lists(st.tuples(port_number, protocol), max_size=3, unique=True)):
        bindings = draw(
            st.one_of(
                st.none(),
                st.lists(
                    st.fixed_dictionaries({"HostIp": ip, "HostPort": port_number.map(str)}),
                    min_size=1,
                    max_size=2,
                ),
            )
        )
        ports[f"{number}/{proto}"] = bindings
    requests, _ = draw(device_requests())
    started = draw(st.sampled_from(["0001-01-01T00:00:00Z", "2026-11-28T03:00:00.1Z"]))
    return {
        "Id": draw(container_id),
        "Name": "/" + draw(name),
        "Created": "2026-11-28T02:59:59.9Z",
        "Config": {
            "Image": draw(text),
            "Env": [f"{k}={v}" for k, v in draw(st.lists(env_pair, max_size=4))],
            "Labels": draw(st.dictionaries(label_key, text, max_size=3)),
            "Cmd": draw(st.one_of(st.none(), st.lists(text, max_size=3))),
            "Entrypoint": draw(st.one_of(st.none(), st.lists(text, min_size=1, max_size=2))),
        },
        "State": {
            "Status": draw(st.sampled_from(["running", "exited", "created"])),
            "StartedAt": started,
            "FinishedAt": "0001-01-01T00:00:00Z",
            "ExitCode": draw(st.integers(0, 255)),
            "Pid": draw(st.integers(0, 2**22)),
        },
        "HostConfig": {
            "Memory": draw(st.integers(0, 2**40)),
            "NanoCpus": draw(st.integers(0, 64 * 10**9)),
            "ShmSize": draw(st.integers(0, 2**36)),
            "RestartPolicy": {"Name": draw(st.sampled_from(["", "no", "always"]))},
            "Ulimits": [
                {"Name": n, "Soft": s, "Hard": h} for n, s, h in draw(st.lists(ulimit, max_size=3))
            ],
            "DeviceRequests": requests,
        },
        "NetworkSettings": {"Ports": ports},
        "Mounts": draw(st.lists(engine_mount(), max_size=3)),
    }


OPTIONAL_LIST_KEYS = [
    "Names", "Image", "State", "Status", "Created", "Ports", "Labels", "Mounts", "Command"
]  # fmt: skip
INSPECT_SECTIONS = ["Name", "Created", "Config", "State", "HostConfig", "NetworkSettings", "Mounts"]


def _mount(raw: dict[str, Any]) -> Mount:
    return Mount(
        raw["Type"], raw.get("Source") or raw.get("Name") or "", raw["Destination"], not raw["RW"]
    )


@FAST
@given(list_entry())
def test_list_entries_round_trip(raw: dict[str, Any]) -> None:
    got = summary_from_list("gpu1", raw)
    assert (got.host, got.id, got.name) == ("gpu1", raw["Id"], raw["Names"][0][1:])
    assert (got.image, got.state, got.status, got.command) == (
        raw["Image"],
        raw["State"],
        raw["Status"],
        raw["Command"],
    )
    assert got.created == float(raw["Created"])
    assert got.labels == tuple(sorted(raw["Labels"].items()))
    assert got.mounts == tuple(_mount(m) for m in raw["Mounts"])
    want = {
        PortMapping(p["PrivatePort"], p["Type"], p.get("IP"), p.get("PublicPort"))
        for p in raw["Ports"]
    }
    assert set(got.ports) == want and len(got.ports) == len(want)
    assert list(got.ports) == sorted(
        got.ports, key=lambda p: (p.private_port, p.protocol, p.host_ip or "", p.host_port or 0)
    )


@FAST
@given(list_entry(), st.sets(st.sampled_from(OPTIONAL_LIST_KEYS)))
def test_optional_list_fields_may_be_missing(raw: dict[str, Any], drop: set[str]) -> None:
    for key in drop:
        del raw[key]
    got = summary_from_list("h", raw)
    assert got.id == raw["Id"]
    assert got.name == (raw["Names"][0][1:] if "Names" in raw else raw["Id"][:12])
    if "Ports" not in raw:
        assert got.ports == ()
    if "Labels" not in raw:
        assert got.labels == ()


@FAST
@given(list_entry(), st.sets(st.sampled_from(["Names", "Ports", "Labels", "Mounts"])))
def test_list_fields_may_be_null(raw: dict[str, Any], null: set[str]) -> None:
    for key in null:
        raw[key] = None
    got = summary_from_list("h", raw)
    assert got.id == raw["Id"]
    for key, attr in (("Ports", "ports"), ("Labels", "labels"), ("Mounts", "mounts")):
        if key in null:
            assert getattr(got, attr) == ()


@FAST
@given(inspect_answer())
def test_inspect_answers_round_trip(raw: dict[str, Any]) -> None:
    got = details_from_inspect("gpu1", raw)
    config, state, hc = raw["Config"], raw["State"], raw["HostConfig"]
    assert got.summary.id == raw["Id"] and got.summary.name == raw["Name"][1:]
    assert got.env == tuple(tuple(e.split("=", 1)) for e in config["Env"])
    assert got.labels == tuple(sorted(config["Labels"].items()))
    assert got.command == tuple(config["Cmd"] or ())
    assert got.entrypoint == tuple(config["Entrypoint"] or ())
    assert got.summary.command == " ".join([*(config["Entrypoint"] or ()), *(config["Cmd"] or ())])
    assert got.exit_code == state["ExitCode"] and got.pid == (state["Pid"] or None)
    assert got.started_at == (None if state["StartedAt"].startswith("0001") else state["StartedAt"])
    assert got.finished_at is None
    assert got.memory_limit_bytes == (hc["Memory"] or None)
    assert got.nano_cpus == (hc["NanoCpus"] or None)
    assert got.shm_size_bytes == (hc["ShmSize"] or None)
    assert got.restart_policy == (hc["RestartPolicy"]["Name"] or "no")
    assert got.ulimits == tuple((u["Name"], u["Soft"], u["Hard"]) for u in hc["Ulimits"])
    assert got.mounts == tuple(_mount(m) for m in raw["Mounts"])
    want = set()
    for key, bindings in raw["NetworkSettings"]["Ports"].items():
        number, proto = key.split("/")
        for b in bindings or [None]:
            if b is None:
                want.add(PortMapping(int(number), proto))
            else:
                want.add(PortMapping(int(number), proto, b["HostIp"], int(b["HostPort"])))
    assert set(got.ports) == want


@FAST
@given(device_requests())
def test_gpu_requests_round_trip(case: tuple[list[dict[str, Any]], GpuRequest]) -> None:
    requests, want = case
    assert gpu_request_from_host_config({"DeviceRequests": requests}) == want


@FAST
@given(st.lists(st.fixed_dictionaries({"Driver": st.sampled_from(["", "other"]),
                                       "Capabilities": st.just([["compute"]]),
                                       "Count": st.integers(-1, 4)}), max_size=3))  # fmt: skip
def test_device_requests_that_are_not_gpus_are_no_gpus(requests: list[dict[str, Any]]) -> None:
    assert gpu_request_from_host_config({"DeviceRequests": requests}).none


@FAST
@given(inspect_answer(), st.sets(st.sampled_from(INSPECT_SECTIONS)))
def test_inspect_sections_may_be_missing_or_null(raw: dict[str, Any], drop: set[str]) -> None:
    for n, key in enumerate(sorted(drop)):
        if n % 2:
            raw[key] = None
        else:
            del raw[key]
    got = details_from_inspect("h", raw)
    assert got.summary.id == raw["Id"]
    if "HostConfig" in drop:
        assert got.gpus.none and got.ulimits == () and got.restart_policy == "no"


# -- anything at all ------------------------------------------------------------------------

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
LIST_KEYS = ["Id", "Names", "Image", "State", "Status", "Created", "Ports", "Labels", "Mounts"]


@st.composite
def mistyped(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]], keys: list[str]) -> Any:
    """A sane answer with some fields replaced by any JSON value at all."""
    raw = draw(base)
    for key in draw(st.sets(st.sampled_from(keys), max_size=3)):
        raw[key] = draw(json_value)
    return raw


def _only_parse_errors(parse: Any, raw: Any) -> None:
    with contextlib.suppress(*PARSE_ERRORS):
        parse(raw)


@FAST
@given(st.one_of(mistyped(list_entry(), LIST_KEYS), json_value))
@example({"Id": "x", "Ports": [{"PrivatePort": "eighty"}]})
@example({"Id": "x", "Labels": ["a=b"]})
@example({"Id": "x", "Created": None})
def test_any_list_entry_gives_a_summary_or_a_parse_error(raw: Any) -> None:
    _only_parse_errors(lambda r: summary_from_list("h", r), raw)


@FAST
@given(
    st.one_of(
        mistyped(
            inspect_answer(),
            ["Id", *INSPECT_SECTIONS],
        ),
        json_value,
    )
)
@example({"Id": "x", "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "many"}]}})
@example({"Id": "x", "NetworkSettings": {"Ports": {"http/tcp": None}}})
def test_any_inspect_answer_gives_details_or_a_parse_error(raw: Any) -> None:
    _only_parse_errors(lambda r: details_from_inspect("h", r), raw)


@FAST
@given(json_value)
@example({"DeviceRequests": [{"Driver": "nvidia", "Count": "all"}]})
def test_any_host_config_gives_a_request_or_a_parse_error(raw: Any) -> None:
    _only_parse_errors(gpu_request_from_host_config, raw)


numbers = st.one_of(st.integers(0, 2**50), st.floats(0, 1e15))


@FAST
@given(
    st.fixed_dictionaries(
        {
            "cpu_stats": st.fixed_dictionaries(
                {
                    "cpu_usage": st.fixed_dictionaries({"total_usage": numbers}),
                    "system_cpu_usage": numbers,
                    "online_cpus": st.integers(1, 256),
                }
            ),
            "precpu_stats": st.fixed_dictionaries(
                {
                    "cpu_usage": st.fixed_dictionaries({"total_usage": numbers}),
                    "system_cpu_usage": numbers,
                }
            ),
            "memory_stats": st.fixed_dictionaries(
                {"usage": st.integers(0, 2**40), "limit": st.integers(1, 2**45)},
                optional={"stats": st.fixed_dictionaries({"inactive_file": st.integers(0, 2**40)})},
            ),
        }
    )
)
def test_stats_answers_give_a_percentage_and_memory(raw: dict[str, Any]) -> None:
    cpu, used, limit = stats_from_api(raw)
    assert cpu is None or cpu >= 0
    assert used is not None and 0 <= used <= raw["memory_stats"]["usage"]
    assert limit == raw["memory_stats"]["limit"]


@FAST
@given(json_value)
@example({"cpu_stats": {"cpu_usage": {"total_usage": 5}}, "precpu_stats": {}})
def test_any_stats_answer_gives_figures_or_a_parse_error(raw: Any) -> None:
    _only_parse_errors(stats_from_api, raw)
