"""The logs screen (`l`) driven by its keys against real containers, locally and over SSH.

What a user sees is what is asserted: the rows the view draws (``render_line``), the status line,
the file ``s`` writes; the view's line records only where the screen shows them one-to-one.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from rich.segment import Segment

from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.containers import ContainersScreen
from gpuconsole.ui.screens.logs import LogsScreen
from gpuconsole.ui.widgets.containers_table import ContainersTable
from gpuconsole.ui.widgets.log_view import LogView

import uihelpers
from sshfixtures import loop_host
from support import host_at
from uihelpers import notifications

SIZE = (120, 40)
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ")


async def until(
    pilot: Any, cond: Callable[[], bool], timeout: float = 15.0, what: str = ""
) -> None:
    await uihelpers.until(pilot, cond, timeout, what)


#: A container's cue to go on (its next lines, its exit) once the test has seen what it wrote.
GO = "/tmp/go"


async def go(c: Any) -> None:
    await asyncio.to_thread(c.exec_run, ["touch", GO])


def make_app() -> GpuconsoleApp:
    return GpuconsoleApp(host_at(), refresh_seconds=0.5)


async def open_logs(app: GpuconsoleApp, pilot: Any, c: Any, host: str | None = None) -> LogsScreen:
    """Select ``c``'s row and press `l`, as a user does."""
    table = app.containers_screen.query_one(ContainersTable)
    await until(pilot, lambda: table.select_id(c.id, host), 30, "the container's row")
    await pilot.press("l")
    await until(pilot, lambda: isinstance(app.screen, LogsScreen), what="the logs screen")
    screen = app.screen
    assert isinstance(screen, LogsScreen)
    return screen


def view_of(screen: LogsScreen) -> LogView:
    return screen.query_one(LogView)


@contextlib.asynccontextmanager
async def logs_of(c: Any) -> AsyncIterator[tuple[GpuconsoleApp, Any, LogsScreen, LogView]]:
    """The console on the real engine, on ``c``'s logs screen (opened with ``l``)."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(app, pilot, c)
        yield app, pilot, screen, view_of(screen)


def rows(view: LogView) -> list[str]:
    """The rows on screen, as drawn (gutter included)."""
    return [view.render_line(y).text.rstrip() for y in range(view.size.height)]


def texts(view: LogView) -> list[str]:
    return [text for _, text, _ in view.lines]


def ended(view: LogView) -> str:
    marks = [text for kind, text, _ in view.lines if kind == "marker"]
    return marks[-1] if marks else ""


async def test_follows_live_lines_and_marks_the_exit_code(make_container: Any) -> None:
    c = make_container(
        f'i=0; until [ -e {GO} ]; do i=$((i+1)); echo "line $i"; sleep 0.1; done; exit 3'
    )
    async with logs_of(c) as (_app, pilot, screen, view):
        assert f"Logs: {c.name} on local" in str(screen.query_one("#logs-title").render())
        await until(pilot, lambda: len(view.lines) >= 5, what="the first lines")
        seen = len(view.lines)
        await until(pilot, lambda: len(view.lines) >= seen + 5, what="more lines, live")
        assert "following" in screen.status_text and not ended(view)
        await go(c)
        await until(pilot, lambda: bool(ended(view)), 20, "the end marker")
        assert ended(view) == "── container exited with code 3 ──"
        count = len(view.lines) - 1
        assert texts(view)[:-1] == [f"line {i}" for i in range(1, count + 1)]  # none lost
        shown = [r for r in rows(view) if r.strip()]
        assert shown[-1].strip() == "── container exited with code 3 ──"  # at the end, in view
        assert shown[-2].endswith(f"line {count}")
        assert "ended" in screen.status_text


async def test_tail_of_a_stopped_container_and_its_exit(make_container: Any) -> None:
    c = make_container("seq 1 5000; exit 7")
    c.wait(timeout=30)
    async with logs_of(c) as (_app, pilot, _screen, view):
        await until(pilot, lambda: bool(ended(view)), what="the end marker")
        assert texts(view)[:-1] == [str(i) for i in range(4001, 5001)]  # the last 1000 only
        assert ended(view) == "── container is not running (exited with code 7) ──"
        assert rows(view)[-1].strip() == "── container is not running (exited with code 7) ──"


async def test_stderr_lines_are_marked(make_container: Any) -> None:
    # Apart in time: the engine copies the two streams separately, so lines written in the
    # same instant to both may be stored in either order.
    c = make_container(
        "echo to-stdout; sleep 0.3; echo to-stderr >&2; sleep 0.3; echo stdout-again; sleep 3600"
    )
    async with logs_of(c) as (_app, pilot, screen, view):
        await until(pilot, lambda: len(view.lines) == 3, what="three lines")
        assert [(kind, text) for kind, text, _ in view.lines] == [
            ("stdout", "to-stdout"),
            ("stderr", "to-stderr"),
            ("stdout", "stdout-again"),
        ]
        out, err = view.render_line(0), view.render_line(1)
        assert err.text.startswith("▌ ") and out.text.startswith("  ")
        mark: Segment = next(iter(err))
        assert mark.style is not None and mark.style.color is not None
        assert mark.style.color.triplet is not None and mark.style.color.triplet.red > 150

        def text_style(strip: Any, word: str) -> Any:
            return next(s.style for s in strip if word in s.text)

        assert text_style(err, "to-stderr").color != text_style(out, "to-stdout").color
        assert "▌ stderr" in screen.status_text  # the legend


async def test_search_with_n_and_N_cycles_the_matches(make_container: Any) -> None:
    c = make_container(
        'i=1; while [ $i -le 200 ]; do if [ $((i % 50)) -eq 0 ]; then echo "needle $i"; '
        'else echo "hay $i"; fi; i=$((i+1)); done; sleep 3600'
    )
    async with logs_of(c) as (_app, pilot, screen, view):
        await until(pilot, lambda: len(view.lines) == 200, what="200 lines")
        await pilot.press("t")  # timestamps off: the rows then read as the lines

        def on_screen(text: str) -> bool:
            return any(r.strip() == text for r in rows(view))

        def current_text() -> str:
            assert view.current is not None
            return view.lines[view.current - view.first][1]

        await pilot.press("slash", *"NEEDLE".lower(), "enter")
        # From the top of the view (following: the last rows) — the one match there.
        assert current_text() == "needle 200" and "match 4 of 4" in screen.status_text
        assert on_screen("needle 200")
        await pilot.press("n")  # wraps to the first
        assert current_text() == "needle 50" and "match 1 of 4" in screen.status_text
        assert on_screen("needle 50") and not view.following
        top = round(view.scroll_y)
        assert top <= 49 < top + view.size.height  # line 50 (row 49) is in view
        await pilot.press("n")
        assert current_text() == "needle 100" and "match 2 of 4" in screen.status_text
        await pilot.press("N", "N")
        assert current_text() == "needle 200" and "match 4 of 4" in screen.status_text
        await pilot.press("N")
        assert current_text() == "needle 150" and "match 3 of 4" in screen.status_text
        assert on_screen("needle 150")
        # The current match is highlighted; the other matches in view too, differently.
        row = next(y for y in range(view.size.height) if "needle 150" in view.render_line(y).text)
        hit = next(s for s in view.render_line(row) if s.text == "needle")
        assert hit.style is not None and hit.style.bgcolor is not None
        await pilot.press("slash", *"nothing-here", "enter")
        assert "no match" in screen.status_text


async def test_timestamps_and_wrap_toggles(make_container: Any) -> None:
    long = "x" * 150 + "END"
    c = make_container(f"echo short; echo {long}; sleep 3600")
    async with logs_of(c) as (_app, pilot, screen, view):
        await until(pilot, lambda: len(view.lines) == 2, what="two lines")
        await pilot.pause(0.1)
        first = view.render_line(0).text
        assert STAMP.match(first[2:]) and first.rstrip().endswith(" short")  # stamps by default
        await pilot.press("t")
        assert view.render_line(0).text.rstrip() == "  short"
        assert "timestamps off" in screen.status_text
        await pilot.press("t")
        assert STAMP.match(view.render_line(0).text[2:])

        await pilot.press("t")  # off: the long line is 153 cells on a 120-cell screen
        assert view.row_count == 2
        assert "END" not in view.render_line(1).text  # cut at the width (scrolls sideways)
        await pilot.press("w")
        assert view.row_count == 3  # the long line takes two rows
        wrapped = view.render_line(1).text[2:].rstrip() + view.render_line(2).text[2:].rstrip()
        assert wrapped == long and "wrap on" in screen.status_text
        await pilot.press("t")  # stamps back: the rows are recounted at the same width
        assert view.row_count == 3
        assert STAMP.match(view.render_line(1).text[2:])
        await pilot.press("w")
        assert view.row_count == 2 and "wrap off" in screen.status_text


async def test_pause_freezes_the_view_and_counts_new_lines(make_container: Any) -> None:
    c = make_container('i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.1; done')
    async with logs_of(c) as (_app, pilot, screen, view):
        await until(pilot, lambda: len(view.lines) >= 5, what="a few ticks")
        await pilot.press("p")
        frozen_rows, frozen_count = rows(view), len(view.lines)
        await pilot.pause(1.5)
        assert rows(view) == frozen_rows and len(view.lines) == frozen_count
        counted = int(re.search(r"PAUSED, (\d+) new", screen.status_text).group(1))  # type: ignore[union-attr]
        assert counted >= 5  # ~15 written meanwhile (fewer on a busy machine)
        await pilot.press("p")
        await until(pilot, lambda: len(view.lines) >= frozen_count + counted, what="the backlog")
        assert "PAUSED" not in screen.status_text
        numbers = [int(t.split()[1]) for t in texts(view)]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # none lost
        assert rows(view)[-1] != frozen_rows[-1] or rows(view) != frozen_rows


async def test_a_flood_while_paused_keeps_the_last_lines_and_counts_them_all(
    make_container: Any,
) -> None:
    c = make_container(f"until [ -e {GO} ]; do sleep 0.1; done; seq 1 30000; sleep 3600")
    async with logs_of(c) as (_app, pilot, screen, view):
        await pilot.press("p")
        await go(c)
        await until(pilot, lambda: "PAUSED, 30,000 new" in screen.status_text, 30, "the count")
        assert view.total == 0  # frozen: nothing handed over
        await pilot.press("p")
        assert view.total == 30000 and len(view.lines) == 20000  # more than the queue holds
        assert texts(view)[0] == "10001" and texts(view)[-1] == "30000"
        assert rows(view)[-1].endswith(" 30000") and "last 20,000 of 30,000 lines" in (
            screen.status_text
        )


async def test_save_writes_the_lines_as_shown(
    make_container: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    c = make_container(
        "echo alpha; sleep 0.3; echo beta >&2; sleep 0.3; printf 'gamma\\tdelta\\n'; sleep 3600"
    )
    async with logs_of(c) as (app, pilot, _screen, view):
        await until(pilot, lambda: len(view.lines) == 3, what="three lines")
        await pilot.press("s")
        await until(pilot, lambda: len(list(tmp_path.glob("*.log"))) == 1, what="a saved file")
        saved = next(tmp_path.glob("*.log"))
        assert re.fullmatch(rf"{c.name}-local-\d{{8}}-\d{{6}}\.log", saved.name)
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        await until(pilot, lambda: any(str(saved) in n for n in notifications(app)))
        stamped = saved.read_text().splitlines()
        assert [STAMP.sub("", line, count=1) for line in stamped] == [
            "alpha",
            "beta",
            "gamma   delta",
        ]
        assert all(STAMP.match(line) for line in stamped)  # as shown: with timestamps
        await pilot.press("t", "s")  # timestamps hidden: saved without them
        await until(pilot, lambda: len(list(tmp_path.glob("*.log"))) == 2, what="a second file")
        # The other file: its name is the first's with "-1" only within the same second.
        second = next(p for p in tmp_path.glob("*.log") if p != saved)
        assert second.read_text() == "alpha\nbeta\ngamma   delta\n"


async def test_the_buffer_is_bounded_and_keeps_the_view_sensible(make_container: Any) -> None:
    c = make_container(
        f"seq 1 300; until [ -e {GO} ]; do sleep 0.1; done; seq 301 30000; sleep 3600"
    )
    async with logs_of(c) as (_app, pilot, screen, view):
        await until(pilot, lambda: len(view.lines) == 300, what="the first 300 lines")
        await pilot.press("pageup")  # away from the end: the view stops following
        await until(pilot, lambda: not view.following, what="not following")
        await go(c)
        await until(pilot, lambda: view.total == 30000, 30, "all 30,000 lines")
        assert len(view.lines) == view.bound == 20000
        assert texts(view)[0] == "10001" and texts(view)[-1] == "30000"
        assert re.search(r"29,700 new lines \(G: live end\)", screen.status_text)
        # The lines it was showing are gone: the view holds the oldest kept ones, not a gap.
        assert rows(view)[0].strip().endswith("10001")
        await pilot.press("G")
        assert view.following and rows(view)[-1].endswith(" 30000")
        assert "following" in screen.status_text


async def test_leaving_closes_the_stream(make_container: Any) -> None:
    c = make_container('while :; do echo "chatter"; sleep 0.02; done')
    async with logs_of(c) as (app, pilot, screen, view):
        follower = screen.follower
        await until(pilot, lambda: len(view.lines) > 10, what="some chatter")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ContainersScreen), what="back")
        await until(pilot, follower.done.is_set, 5, "the reader thread to return")
        count = follower.received
        await pilot.pause(0.5)
        assert follower.received == count  # nothing reads the stream any more
        assert screen.reader is not None and screen.reader.is_finished


async def test_escape_sequences_render_as_text(make_container: Any) -> None:
    # A tty container: a pty ends lines with \r\n and gives everything as stdout.
    c = make_container(
        r"printf '\033[2J\033[H\033[31mred\033[0m \033]0;pwned\007bell\007 [b]markup[/b] "
        r"\001end\n'; echo plain; sleep 3600",
        tty=True,
    )
    async with logs_of(c) as (_app, pilot, _screen, view):
        await until(pilot, lambda: len(view.lines) == 2, what="two lines")
        await pilot.press("t")
        assert texts(view) == ["red bell␇ [b]markup[/b] ␁end", "plain"]
        drawn = [s.text for y in range(3) for s in view.render_line(y)]
        assert not any(ch < " " or ch == "\x7f" for text in drawn for ch in text)
        assert rows(view)[0] == "  red bell␇ [b]markup[/b] ␁end"  # markup left as text
        assert "pwned" not in "".join(drawn)


async def test_logs_of_a_container_on_the_ssh_host(ssh_home: Path, make_container: Any) -> None:
    c = make_container(
        f'echo "over ssh 1"; sleep 0.3; echo "over ssh 2" >&2; until [ -e {GO} ]; do sleep 0.1; '
        "done; exit 5"
    )
    app = GpuconsoleApp([loop_host()], refresh_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(app, pilot, c, "loop")
        view = view_of(screen)
        assert "on loop" in str(screen.query_one("#logs-title").render())
        await until(pilot, lambda: len(view.lines) >= 2, 30, "the lines over SSH")
        assert [(kind, text) for kind, text, _ in view.lines[:2]] == [
            ("stdout", "over ssh 1"),
            ("stderr", "over ssh 2"),
        ]
        await go(c)
        await until(pilot, lambda: bool(ended(view)), 20, "the end marker over SSH")
        assert ended(view) == "── container exited with code 5 ──"


async def test_a_line_longer_than_the_engine_stores_at_once_reads_as_written(
    make_container: Any,
) -> None:
    # The engine keeps a line in 16 KiB parts, each with its own timestamp
    # (`docker logs -t` shows them inside the line); the screen shows the line as written.
    c = make_container("head -c 40000 /dev/zero | tr '\\0' x; echo; echo after; sleep 3600")
    async with logs_of(c) as (_app, pilot, _screen, view):
        await until(pilot, lambda: len(view.lines) == 2, what="two lines")
        assert texts(view) == ["x" * 40000, "after"]
        await pilot.press("t", "w")  # no stamps, wrapped: rows of x to the end, then "after"
        shown = [r[2:] for r in rows(view)]
        assert shown[-1] == "after" and all(set(r) == {"x"} for r in shown[:-1])


async def test_a_container_that_is_gone_is_said_in_the_screen() -> None:
    # As when it is removed between the table's last refresh and the key (the screen is
    # pushed directly: through the table, the cursor would move to another row first).
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        gone = f"gpct-gone-{uuid.uuid4().hex[:8]}"
        screen = LogsScreen(app.hosts[0], gone, gone)
        app.push_screen(screen)
        await until(pilot, lambda: bool(screen.query(LogView)), what="the logs screen")
        view = view_of(screen)
        await until(pilot, lambda: bool(ended(view)), what="the error, in the view")
        assert ended(view).startswith("── could not open the logs: ") and gone in ended(view)
        assert "ended" in screen.status_text
        await pilot.press("escape")  # and the console goes on
        await until(pilot, lambda: isinstance(app.screen, ContainersScreen), what="back")
