"""Memory sizes as people type them (``512m``, ``32g``, ``1.5GiB``) -> bytes.

Docker reads every unit as binary (``--memory 1g`` is 1 GiB, and so is ``1gb``); so do we, so a
size means the same here as in ``docker run``. Anything else is refused with the units we accept,
never guessed.
"""

from __future__ import annotations

import re
from fractions import Fraction

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*")
UNITS_HELP = "a number with a unit: 512m, 32g, 1.5GiB (k, m, g, t; binary, as docker)"


class SizeError(ValueError):
    """The text is not a size; ``str()`` says what is accepted."""


def parse_size(text: str | int) -> int:
    """Bytes for ``text``; a bare number is bytes (as in docker)."""
    if isinstance(text, bool):
        raise SizeError(f"{text!r} is not a size — use {UNITS_HELP}")
    if isinstance(text, int):
        if text < 0:
            raise SizeError(f"{text} is negative — use {UNITS_HELP}")
        return text
    match = _SIZE.fullmatch(text)
    if not match:
        raise SizeError(f"{text!r} is not a size — use {UNITS_HELP}")
    number, unit = match.groups()
    factor = _UNITS.get(unit.lower())
    if factor is None:
        raise SizeError(f"{text!r} has an unknown unit {unit!r} — use {UNITS_HELP}")
    try:
        # Exact (a float loses bytes past 2**53 and overflows on long numbers).
        value = Fraction(number) * factor
    except ValueError:  # more digits than int() takes
        raise SizeError(f"{text!r} is not a size — use {UNITS_HELP}") from None
    if factor == 1 and value.denominator != 1:
        raise SizeError(f"{text!r} is a fraction of a byte — use {UNITS_HELP}")
    return int(value)


def format_size(n: int) -> str:
    """The shortest exact docker-style text for ``n`` bytes (``8g``, ``1536m``)."""
    for unit, factor in (("t", 1024**4), ("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)
