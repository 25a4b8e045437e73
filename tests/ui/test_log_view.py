"""The logs screen's view on its own (no engine): rows as drawn, and what its caches leave
behind for the garbage collector."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from textual.app import App, ComposeResult

from gpuconsole.ui.resources import stylesheet
from gpuconsole.ui.widgets.log_lines import LogLine
from gpuconsole.ui.widgets.log_view import LogView, _Recent

STAMP = "2026-01-01T00:00:00.123456789Z"


def line(n: int, kind: Any = "stdout") -> LogLine:
    return (kind, f"line {n} of a chatty container", STAMP)


class ViewApp(App[None]):
    CSS_PATH = str(stylesheet())

    def compose(self) -> ComposeResult:
        yield LogView(100)


def test_recent_keeps_the_last_used_and_leaves_no_cycles() -> None:
    class Value:
        pass

    recent: _Recent[int, Value] = _Recent(2)
    a, b, c = Value(), Value(), Value()
    recent[1], recent[2] = a, b
    assert recent.get(1) is a  # 1 is now the most recent
    recent[3] = c
    assert recent.get(2) is None and recent.get(1) is a and recent.get(3) is c
    gone = weakref.ref(a)
    del a
    gc.disable()
    try:
        recent.clear()
        assert gone() is None  # freed at once, not left for a collection
    finally:
        gc.enable()


async def test_rows_are_drawn_in_few_segments_and_toggles_redraw() -> None:
    app = ViewApp()
    async with app.run_test(size=(80, 10)) as pilot:
        view = app.query_one(LogView)
        view.add([line(n, "stderr" if n % 3 == 1 else "stdout") for n in range(30)])
        await pilot.pause()
        last = view.render_line(view.size.height - 1)
        assert last.text.startswith(f"  {STAMP} line 29 ") and last.cell_length == 80
        # Stamps on: the gutter goes with the stamp, the padding with the text.
        assert len(list(last)) == 2
        err = view.render_line(view.size.height - 2)
        assert err.text.startswith(f"▌ {STAMP} line 28 ") and len(list(err)) == 3
        view.set_stamps(False)
        await pilot.pause()
        last = view.render_line(view.size.height - 1)
        assert last.text.rstrip() == "  line 29 of a chatty container"
        assert len(list(last)) == 1
        # What the compositor draws is those rows (filters applied), one per line.
        strips = view.render_lines(view.size.region)
        assert [s.text for s in strips] == [
            view.render_line(y).text for y in range(view.size.height)
        ]
        view.search("chatty")
        await pilot.pause()
        hit = [s for s in view.render_line(view.size.height - 1) if s.text == "chatty"]
        assert hit and hit[0].style is not None and hit[0].style.bgcolor is not None


async def test_a_toggle_redraws_at_once_and_lets_go_of_the_old_drawings_after_its_frame() -> None:
    """``t`` (and ``w``, a search) makes every drawn line stale: the old drawings are freed
    after the key's frame is out, not before it (freeing a thousand took longer than drawing
    the screen again), and never pile up however many toggles come between two frames."""
    app = ViewApp()
    async with app.run_test(size=(80, 10)) as pilot:
        view = app.query_one(LogView)
        view.add([line(n) for n in range(300)])
        await pilot.pause()
        for n in range(250, 300):  # lines scrolled back to, drawn and cached
            view._body(n - view.first)
        old = view._cache
        assert old.get(299) is not None
        view.set_stamps(False)
        # The key's own frame: the rows on screen drawn anew, without their stamps...
        last = view.render_line(view.size.height - 1)
        assert last.text.rstrip() == "  line 299 of a chatty container"
        # ...while the old drawings wait for the frame to be out, still whole.
        assert view._stale and view._stale[0][0] is old and old.get(250) is not None
        await pilot.pause()
        assert view._stale == []
        for _ in range(10):  # ten toggles between two frames: at most four caches wait
            view.set_stamps(not view.stamps)
        assert len(view._stale) <= 4
        await pilot.pause()
        assert view._stale == [] and view.stamps is False
        assert view.render_line(view.size.height - 1).text.startswith("  line 299 ")


async def test_a_batch_measured_by_its_reader_sets_the_scroll_width() -> None:
    """The logs screen's reader measures each batch on its own thread (``take``'s widths):
    the view's scroll width then reaches the end of the longest line, stamp included, as
    when the view measures a batch itself."""
    from gpuconsole.ui.screens.logs import LogFollower

    follower = LogFollower(None, "c", 0, 1000)  # type: ignore[arg-type]
    long = ("stdout", "x" * 200, STAMP)
    follower._put([line(1), long])
    follower._put([("stderr", "short", STAMP[:20])])
    batch, skipped, widths = follower.take()
    assert (len(batch), skipped, widths) == (3, 0, (200, len(STAMP)))
    assert follower.take() == ([], 0, (0, 0))
    app = ViewApp()
    async with app.run_test(size=(80, 10)) as pilot:
        view = app.query_one(LogView)
        view.add(batch, skipped, widths)
        await pilot.pause()
        assert view.virtual_size.width == 2 + len(STAMP) + 1 + 200
        view.set_stamps(False)
        await pilot.pause()
        assert view.virtual_size.width == 2 + 200
        view.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        assert view.render_line(1).text.rstrip().endswith("x" * 20)  # its end, in view
