"""Adaptive defaults: what a launch gets that the user did not ask for, fitted to the host.

A default the user did not ask for must never break their launch. So each default is checked
against what the host can do and, where it cannot, left out or lowered with a one-line note
(shown by the CLI, the form and the details screen); a value the user typed that the host cannot
apply is refused before anything is created, naming the field and the fix. Pure functions: the
facts (the engine's limits, the host's memory) are gathered elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpuconsole.backend.launch.engine_limits import EngineLimits
from gpuconsole.backend.launch.sizes import SizeError, format_size, parse_size
from gpuconsole.backend.launch.spec import DEFAULT_SHM, DEFAULT_ULIMITS, Issue, Ulimit

#: The names ``docker run --ulimit`` takes.
ULIMIT_NAMES = frozenset(
    {
        *("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile"),
        *("nproc", "rss", "rtprio", "rttime", "sigpending", "stack"),
    }
)

#: A tmpfs gets half the memory unless told otherwise (the kernel's own default): the most a
#: default shm size may take of the host.
SHM_SHARE = 2


@dataclass(frozen=True, slots=True)
class Resolved:
    """One field resolved against the host: its value, errors (messages) and notes."""

    errors: tuple[str, ...] = ()
    notes: tuple[Issue, ...] = ()


@dataclass(frozen=True, slots=True)
class UlimitChoice(Resolved):
    ulimits: tuple[Ulimit, ...] = ()
    #: Names of the ulimits that came from the defaults (the launcher may still drop those).
    defaulted: tuple[str, ...] = field(default=())

    def default_texts(self) -> tuple[str, ...]:
        """The defaults applied, as typed (``stack=67108864``), for the form's hint."""
        return tuple(t for t in DEFAULT_ULIMITS if t.partition("=")[0] in self.defaulted)


@dataclass(frozen=True, slots=True)
class ShmChoice(Resolved):
    size: int | None = None


def parse_ulimit(text: str) -> Ulimit:
    """``NAME=SOFT[:HARD]`` (-1 = unlimited); raises ValueError saying what is wrong."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or name not in ULIMIT_NAMES:
        raise ValueError(
            f"{text!r} is not NAME=SOFT[:HARD] with a known name "
            f"({', '.join(sorted(ULIMIT_NAMES))})"
        )
    soft_text, _, hard_text = values.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise ValueError(f"{text!r}: limits must be whole numbers (-1 for unlimited)") from None
    if soft < -1 or hard < -1:
        raise ValueError(f"{text!r}: limits must be -1 (unlimited) or more")
    if hard != -1 and (soft == -1 or soft > hard):
        raise ValueError(f"{text!r}: the soft limit may not exceed the hard one")
    return Ulimit(name, soft, hard)


def resolve_ulimits(given: tuple[str, ...], limits: EngineLimits | None, host: str) -> UlimitChoice:
    """The user's ulimits over the defaults (by name), fitted to what the engine can set.

    A typed value the engine cannot apply is an error (only when we are sure which engine
    process we read); a default it cannot apply is left out with a note, so the container keeps
    the engine's own limit.
    """
    errors: list[str] = []
    chosen: dict[str, Ulimit] = {}
    for text in given:
        try:
            limit = parse_ulimit(text)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        why = limits.refusal(limit, host) if limits is not None and limits.exact else None
        if why is not None and limits is not None:
            errors.append(f"{text.strip()}: {why} — {limits.fix(limit)}")
            continue
        chosen[limit.name] = limit
    notes: list[Issue] = []
    defaulted: list[str] = []
    for text in DEFAULT_ULIMITS:
        limit = parse_ulimit(text)
        if limit.name in chosen or any(e.startswith(f"{limit.name}=") for e in given):
            continue
        why = limits.refusal(limit, host) if limits is not None else None
        if why is not None:
            notes.append(Issue("ulimits", f"left out the default ulimit {text}: {why}"))
            continue
        chosen[limit.name] = limit
        defaulted.append(limit.name)
    return UlimitChoice(
        errors=tuple(errors),
        notes=tuple(notes),
        ulimits=tuple(chosen.values()),
        defaulted=tuple(defaulted),
    )


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


def resolve_shm(
    typed: str | int | None, variant: str, host_memory: int | None, host: str
) -> ShmChoice:
    """The /dev/shm size: as typed (refused above the host's memory), else the variant's
    default lowered to half the host's memory where that is less (with a note)."""
    if typed is not None and str(typed).strip():
        try:
            size = parse_size(typed)
        except SizeError as exc:
            return ShmChoice(errors=(str(exc),))
        if size <= 0:
            return ShmChoice(errors=("must be more than 0 — e.g. 8g",))
        if host_memory and size > host_memory:
            return ShmChoice(
                errors=(
                    f"{typed!r} is more than host {host!r} has ({_gib(host_memory)}) — ask for "
                    f"less, e.g. {format_size(_default_cap(host_memory))}",
                )
            )
        return ShmChoice(size=size)
    default = DEFAULT_SHM.get(variant)
    if default is None:
        return ShmChoice()
    size = parse_size(default)
    if host_memory and size > _default_cap(host_memory):
        lowered = _default_cap(host_memory)
        note = Issue(
            "shm_size",
            f"lowered the default shm size {default} to {format_size(lowered)}: host {host!r} "
            f"has {_gib(host_memory)} of memory, and a default may take at most half",
        )
        return ShmChoice(size=lowered, notes=(note,))
    return ShmChoice(size=size)


def _default_cap(host_memory: int) -> int:
    """Half the host's memory, in whole MiB (so it reads as a size people type)."""
    mib = 1024**2
    return max(mib, host_memory // SHM_SHARE // mib * mib)
