"""Keeps Python's full garbage collections out of key presses.

A console at rest holds some 10^5-10^6 objects that live as long as it does (modules, Textual's
widgets, styles and caches, the rows). Python's oldest-generation collection walks all of them:
130 ms on these machines, landing on a key press now and then (the p95 of `?` in a real terminal
was that collection). Once the console has painted its first rows, what exists is collected once
and frozen (``gc.freeze``: the collector no longer walks it); later collections walk only what
was made since. Reference counting still frees everything as usual; only cycles among the frozen
objects would wait, and those are collected first.
"""

from __future__ import annotations

import gc

_settled = False


def settle() -> None:
    """Collect, then freeze what survives (once per process; later calls do nothing)."""
    global _settled
    if _settled:
        return
    _settled = True
    gc.collect()
    gc.freeze()
