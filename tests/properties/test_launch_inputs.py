"""Property tests for the launch inputs: sizes, CPUs, GPU selections, ports, volumes, env,
ulimits, names and image references.

Each parser either returns a value or raises its documented error (SizeError / ValueError /
LaunchRejected), and what one of our formats writes reads back the same.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gpuconsole.backend.errors import LaunchRejected
from gpuconsole.backend.launch.defaults import (
    ULIMIT_NAMES,
    parse_ulimit,
    resolve_shm,
    resolve_ulimits,
)
from gpuconsole.backend.launch.engine_limits import EngineLimits
from gpuconsole.backend.launch.ports import port_problem, published_by, valid_bind_address
from gpuconsole.backend.launch.sizes import SizeError, format_size, parse_size
from gpuconsole.backend.launch.spec import GpuSelection, LaunchSpec, Ulimit, parse_gpus
from gpuconsole.backend.launch.validate import (
    EngineFacts,
    LaunchCheck,
    image_tag_warning,
    parse_volume,
    validate,
)
from gpuconsole.present import format as fmt

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SPEC_FIELDS = set(LaunchSpec.__dataclass_fields__)
UNITS = ["", "b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib", "t", "tb", "tib"]

#: Text shaped like a size (digits, a dot, a unit) more often than pure noise.
size_like = st.one_of(
    st.text(),
    st.builds(
        lambda ws1, number, ws2, unit, ws3: f"{ws1}{number}{ws2}{unit}{ws3}",
        st.sampled_from(["", " ", "\t"]),
        st.from_regex(r"\d{0,30}(\.\d{0,30})?", fullmatch=True),
        st.sampled_from(["", " "]),
        st.sampled_from([*UNITS, *(u.upper() for u in UNITS), "x", "pb", "GiB", "Ki"]),
        st.sampled_from(["", " ", "\n"]),
    ),
)


# -- sizes --------------------------------------------------------------------------------


@FAST
@given(size_like)
@example("9" * 400 + "k")  # float() of it was inf: int(inf) raised OverflowError
@example("1" * 5000)  # past int()'s digit limit
@example("9007199254740993")  # a bare byte count past float precision lost its last byte
def test_parse_size_returns_bytes_or_size_error(text: str) -> None:
    try:
        value = parse_size(text)
    except SizeError as exc:
        assert str(exc)
        return
    assert isinstance(value, int) and value >= 0


@FAST
@given(st.one_of(st.integers(), st.booleans()))
def test_parse_size_of_int(value: int) -> None:
    try:
        parsed = parse_size(value)
    except SizeError:
        assert isinstance(value, bool) or value < 0
    else:
        assert parsed == value


@FAST
@given(st.integers(min_value=0, max_value=2**70))
@example(9007199254740993)
def test_format_size_parses_back_exactly(n: int) -> None:
    assert parse_size(format_size(n)) == n


@FAST
@given(st.integers(min_value=0, max_value=2**63), st.sampled_from(UNITS))
def test_number_with_unit_is_number_times_unit(n: int, unit: str) -> None:
    factor = parse_size(f"1{unit}")
    assert parse_size(f"{n}{unit}") == n * factor
    assert parse_size(f" {n} {unit.upper()} ") == n * factor


@FAST
@given(st.integers(min_value=1024, max_value=1023 * 1024**4))
def test_display_size_parses_back_within_its_rounding(n: int) -> None:
    """``present.format.size`` (one decimal, KiB..TiB) read by ``parse_size``: within half a
    tenth of the unit shown (and the byte the parse truncates)."""
    text = fmt.size(n)
    parsed = parse_size(text)
    unit = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}[text.split()[1]]
    assert abs(parsed - n) <= 0.05 * unit + 1


# -- CPUs, names, image, env, labels, ports, bind: through validate() ----------------------


def _facts(**changes: object) -> EngineFacts:
    # A remote engine: no socket is bound and no local path is looked at.
    base: dict[str, object] = {"host": "h", "local": False, "home": "/home/u", "cpus": None}
    base.update(changes)
    return EngineFacts(**base)  # type: ignore[arg-type]


def _check(spec: LaunchSpec, facts: EngineFacts | None = None) -> LaunchCheck:
    check = validate(spec, facts or _facts(), None, cwd=Path("/base"), environ={"HOME_X": "1"})
    for name, message in check.errors:
        assert name in SPEC_FIELDS, name
        assert message
    if check.errors:
        with pytest.raises(LaunchRejected) as info:
            check.raise_for_errors()
        assert info.value.errors == check.errors
    else:
        assert check.plan is not None
    return check


def _errors(check: LaunchCheck, name: str) -> list[str]:
    return [m for f, m in check.errors if f == name]


junk = st.text(max_size=40)
cpus_values = st.one_of(
    st.none(),
    junk,
    st.floats(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
    st.from_regex(r"\s*-?\d{0,6}(\.\d{0,4})?(e\d{1,3})?\s*", fullmatch=True),
)


@SLOW
@given(cpus_values, st.sampled_from([None, 4, 64]))
@example(10**400, None)  # float(int) raised OverflowError
@example(1e308, None)  # round(1e308 * 1e9) raised OverflowError
@example("1e308", None)
def test_cpus_give_nano_cpus_or_a_cpus_error(cpus: object, host_cpus: int | None) -> None:
    check = _check(LaunchSpec(variant="plain", image="i:1", cpus=cpus), _facts(cpus=host_cpus))  # type: ignore[arg-type]
    assert {f for f, _ in check.errors} <= {"cpus"}
    if check.plan is not None and check.plan.nano_cpus is not None:
        assert check.plan.nano_cpus >= 10_000_000
        if host_cpus:
            assert check.plan.nano_cpus <= host_cpus * 10**9


@SLOW
@given(
    st.builds(
        LaunchSpec,
        variant=st.one_of(st.sampled_from(["jupyter", "plain", "Plain ", "x"]), junk),
        image=st.one_of(junk, st.sampled_from(["a/b:1", "a/b", "a:latest", "a@sha256:00"])),
        name=junk,
        gpus=junk,
        memory=st.one_of(junk, size_like),
        cpus=cpus_values,
        shm_size=st.one_of(st.none(), size_like),
        ulimits=st.lists(junk, max_size=3).map(tuple),
        volumes=st.lists(junk, max_size=3).map(tuple),
        env=st.lists(junk, max_size=3).map(tuple),
        workdir=junk,
        user=junk,
        port=st.one_of(st.none(), junk, st.integers()),
        bind=st.one_of(junk, st.sampled_from(["127.0.0.1", "::1", "0.0.0.0"])),
        labels=st.lists(junk, max_size=3).map(tuple),
        command=st.lists(junk, max_size=2).map(tuple),
    )
)
def test_validate_any_spec_names_each_bad_field(spec: LaunchSpec) -> None:
    check = _check(spec, _facts(memory_bytes=64 * 1024**3, limits=EngineLimits()))
    if check.plan is not None:
        plan = check.plan
        assert plan.variant in ("jupyter", "plain")
        if plan.host_port is not None:
            assert 1 <= plan.host_port <= 65535


NAME_RE = r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,40}"


@SLOW
@given(st.one_of(st.from_regex(NAME_RE, fullmatch=True), junk))
def test_names_are_kept_or_refused_under_name(name: str) -> None:
    check = _check(LaunchSpec(variant="plain", image="i:1", name=name))
    if check.plan is None:
        assert {f for f, _ in check.errors} == {"name"}
    elif name.strip():
        assert check.plan.name == name.strip()


@SLOW
@given(st.from_regex(NAME_RE, fullmatch=True))
def test_taken_name_is_refused(name: str) -> None:
    check = _check(LaunchSpec(variant="plain", image="i:1", name=name), _facts(names={name}))
    assert [f for f, _ in check.errors] == ["name"]
    assert repr(name) in check.errors[0][1]


env_key = st.from_regex(r"[^=\s]+", fullmatch=True).filter(
    lambda k: k not in ("JUPYTER_TOKEN", "GPUCONSOLE_AUTHORIZED_KEYS", "NVIDIA_VISIBLE_DEVICES")
)


@SLOW
@given(st.lists(st.tuples(env_key, st.text()), max_size=4))
def test_env_key_value_round_trips(pairs: list[tuple[str, str]]) -> None:
    texts = tuple(f"{k}={v}" for k, v in pairs)
    check = _check(LaunchSpec(variant="plain", image="i:1", env=texts))
    assert check.plan is not None, check.errors
    assert check.plan.env == tuple(pairs)


@SLOW
@given(st.lists(junk, max_size=4))
def test_env_junk_is_refused_under_env(texts: list[str]) -> None:
    check = _check(LaunchSpec(variant="plain", image="i:1", env=tuple(texts)))
    assert {f for f, _ in check.errors} <= {"env"}


@SLOW
@given(st.one_of(st.none(), junk, st.integers(), st.integers(min_value=1, max_value=65535)))
def test_port_is_in_range_or_refused_under_port(port: object) -> None:
    check = _check(LaunchSpec(variant="jupyter", image="i:1", port=port))  # type: ignore[arg-type]
    assert {f for f, _ in check.errors} <= {"port"}
    if check.plan is not None:
        assert check.plan.host_port is not None and 1 <= check.plan.host_port <= 65535
        if isinstance(port, int) and port != 0:
            assert check.plan.host_port == port


@FAST
@given(
    junk,
    st.integers(min_value=1, max_value=65535),
    st.dictionaries(
        st.tuples(st.sampled_from(["0.0.0.0", "::", "127.0.0.1", ""]), st.integers(1, 65535)),
        junk,
        max_size=4,
    ),
)
def test_port_helpers_never_raise(bind: str, port: int, published: dict) -> None:
    assert isinstance(valid_bind_address(bind), bool)
    owner = published_by(bind, port, published)
    assert owner is None or owner in published.values()
    problem = port_problem(bind, port, published, local=False)
    assert (problem is None) == (owner is None)


# -- GPU selections -----------------------------------------------------------------------

gpu_id = st.one_of(
    st.integers(min_value=0, max_value=64).map(str),
    st.from_regex(r"(GPU|MIG)-[0-9a-f]{8}(-[0-9a-f]{4}){0,4}", fullmatch=True),
)
selections = st.one_of(
    st.just(GpuSelection()),
    st.just(GpuSelection(all=True)),
    st.lists(gpu_id, min_size=1, max_size=5, unique=True).map(
        lambda ids: GpuSelection(ids=tuple(ids))
    ),
)


@FAST
@given(st.one_of(st.none(), st.integers(), junk, st.from_regex(r'"?(device=)?[\d, ]*"?')))
def test_parse_gpus_returns_a_selection_or_value_error(text: object) -> None:
    try:
        sel = parse_gpus(text)  # type: ignore[arg-type]
    except ValueError as exc:
        assert "GPU selection" in str(exc)
        return
    assert isinstance(sel, GpuSelection)
    # What it reads, written back and read again, is the same selection.
    assert parse_gpus(sel.text()) == sel


@FAST
@given(selections, st.sampled_from(["{}", "device={}", '"{}"', '"device={}"', " {} "]))
def test_gpu_selection_text_round_trips(sel: GpuSelection, form: str) -> None:
    assert parse_gpus(form.format(sel.text())) == sel
    assert parse_gpus(sel.text().replace(",", " , ")) == sel


# -- volumes ------------------------------------------------------------------------------

segment = st.text(
    alphabet=st.characters(blacklist_characters=":/\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", ".."))
abs_path = st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
volume_name = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,20}", fullmatch=True)


@FAST
@given(
    st.one_of(junk, st.from_regex(r"~[a-z]{0,8}(/[a-z]{0,4})?:/[a-z]{1,4}(:r[ow])?")),
    st.booleans(),
    st.sampled_from([None, "/home/u"]),
)
@example("~nosuchuser_zz/x:/data", False, None)  # Path.expanduser raised RuntimeError
@example("~nosuchuser_zz/x:/data", True, "/home/u")
def test_parse_volume_returns_a_mount_or_value_error(
    text: str, remote: bool, home: str | None
) -> None:
    try:
        vol = parse_volume(text, Path("/base"), home=home, remote=remote)
    except ValueError as exc:
        assert repr(text) in str(exc)
        return
    assert vol.destination.startswith("/")
    assert vol.named or vol.source.startswith("/")


@FAST
@given(
    st.one_of(abs_path, volume_name),
    abs_path,
    st.booleans(),
    st.sampled_from(["", ":rw"]),
    st.booleans(),
)
def test_volume_text_round_trips(
    source: str, dest: str, read_only: bool, rw: str, remote: bool
) -> None:
    text = f"{source}:{dest}" + (":ro" if read_only else rw)
    vol = parse_volume(text, Path("/base"), home="/home/u", remote=remote)
    assert (vol.destination, vol.read_only, vol.named) == (
        dest,
        read_only,
        not source.startswith("/"),
    )
    assert parse_volume(vol.text(), Path("/elsewhere"), remote=remote) == vol


# -- ulimits ------------------------------------------------------------------------------

limit_value = st.one_of(st.just(-1), st.integers(min_value=0, max_value=2**63))


@FAST
@given(
    st.one_of(
        junk,
        st.builds(
            lambda n, s, h: f"{n}={s}{h}",
            st.sampled_from([*sorted(ULIMIT_NAMES), "bogus", " nofile"]),
            st.one_of(junk, limit_value.map(str)),
            st.one_of(st.just(""), junk.map(lambda t: ":" + t), limit_value.map(lambda v: f":{v}")),
        ),
    )
)
def test_parse_ulimit_returns_a_limit_or_value_error(text: str) -> None:
    try:
        limit = parse_ulimit(text)
    except ValueError as exc:
        assert repr(text) in str(exc)
        return
    assert limit.name in ULIMIT_NAMES
    assert limit.soft >= -1 and limit.hard >= -1
    assert limit.hard == -1 or (limit.soft != -1 and limit.soft <= limit.hard)


@FAST
@given(st.sampled_from(sorted(ULIMIT_NAMES)), limit_value, limit_value)
def test_ulimit_text_round_trips(name: str, a: int, b: int) -> None:
    # Order the pair so it is valid: soft <= hard, -1 (unlimited) only as the hard one or both.
    if a == -1 or (b != -1 and a > b):
        a, b = b, a
    if a == -1 and b != -1:
        a, b = b, a
    if a == -1:
        b = -1
    limit = Ulimit(name, a, b)
    assert parse_ulimit(f"{name}={a}:{b}") == limit
    if a == b:
        assert parse_ulimit(f"{name}={a}") == limit


@FAST
@given(
    st.lists(junk, max_size=3),
    st.sampled_from([None, EngineLimits(), EngineLimits(known=True, exact=True, can_raise=False)]),
)
def test_resolve_ulimits_reports_bad_texts_as_errors(given: list[str], limits: object) -> None:
    choice = resolve_ulimits(tuple(given), limits, "h")  # type: ignore[arg-type]
    assert all(isinstance(m, str) and m for m in choice.errors)
    assert len({u.name for u in choice.ulimits}) == len(choice.ulimits)


@FAST
@given(
    st.one_of(st.none(), size_like, st.integers()),
    st.sampled_from(["jupyter", "plain", "x"]),
    st.one_of(st.none(), st.integers(min_value=0, max_value=2**50)),
)
def test_resolve_shm_never_raises(typed: object, variant: str, memory: int | None) -> None:
    choice = resolve_shm(typed, variant, memory, "h")  # type: ignore[arg-type]
    if choice.errors:
        assert choice.size is None
    elif choice.size is not None:
        assert choice.size > 0
        if memory:
            assert choice.size <= max(memory, 1024**2)


# -- image references ---------------------------------------------------------------------

repo = st.from_regex(
    r"([a-z0-9.-]{1,10}(:\d{1,5})?/)?[a-z0-9._-]{1,10}(/[a-z0-9._-]{1,10})?", fullmatch=True
)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@FAST
@given(junk)
def test_image_tag_warning_never_raises(image: str) -> None:
    warning = image_tag_warning(image)
    assert warning is None or repr(image) in warning


@FAST
@given(repo, st.one_of(st.none(), tag), st.booleans())
def test_image_tag_warning_matches_the_reference(name: str, tag_: str | None, digest: bool) -> None:
    image = name + (f":{tag_}" if tag_ else "") + ("@sha256:" + "0" * 64 if digest else "")
    warning = image_tag_warning(image)
    if digest or (tag_ and tag_ != "latest"):
        assert warning is None
    else:
        assert warning is not None and ("no tag" in warning or "'latest'" in warning)
    check = _check(LaunchSpec(variant="plain", image=image))
    assert not _errors(check, "image")
    assert check.plan is not None and check.plan.image == image


@FAST
@given(st.text(alphabet=string.whitespace, min_size=1, max_size=3), repo)
def test_image_with_spaces_is_refused(space: str, name: str) -> None:
    check = _check(LaunchSpec(variant="plain", image=f"{name}{space}x:1"))
    assert _errors(check, "image")
