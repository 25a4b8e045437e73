"""The console in a real browser (chromium through Playwright): the printed URL opens it, the
rows, the help and the GPU screen show and answer keys, and nothing opens without the token."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from browser import chromium_path, launch, screen, wait_for_screen
from conftest import REPLAY, Served, alive

from support import wait_for

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if chromium_path() is None:
        pytest.fail(
            "no chromium for the browser tests: run the suite through scripts/test (it installs "
            "Debian's chromium) or set GPUCONSOLE_TEST_CHROMIUM",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


def test_the_console_in_a_browser(
    browser: Any, serve: Callable[..., Served], make_container: Callable[..., Any]
) -> None:
    container = make_container(name=f"web-tab-{int(time.time() * 1000) % 10**8}")
    served = serve(before=("--gpu-replay", str(REPLAY)))
    context = browser.new_context(viewport={"width": 1400, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    response = page.goto(served.url)
    assert response.status == 200
    assert page.url == served.base + "/"  # the token has left the address bar
    [cookie] = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # Rows of the real engine, and the replayed H100, drawn by the page's terminal.
    wait_for_screen(page, container.name, "H100", "Up ")
    # Focused from the start: the footer's keys show before any key is pressed.
    wait_for_screen(page, "s Start", "g GPUs")
    # Keys reach the console without a click first.
    page.keyboard.press("?")
    wait_for_screen(page, "Keys", "This help", "Quit gpuconsole")
    page.keyboard.press("Escape")
    wait_for(lambda: "This help" not in screen(page), 10, "the help to close")
    page.keyboard.press("g")
    wait_for_screen(page, "utilization", "power", "GPU-85f63f49")
    page.keyboard.press("Escape")
    wait_for_screen(page, container.name)
    # The mouse too: a click on the row selects it, a second click opens its details.
    row = (
        screen(page)
        .splitlines()
        .index(next(line for line in screen(page).splitlines() if container.name in line))
    )
    box = page.locator("#terminal").bounding_box()
    cell_height = box["height"] / page.evaluate("window.gpuconsoleTerminal.rows")
    y = box["y"] + (row + 0.5) * cell_height
    page.mouse.click(box["x"] + 40, y)
    page.mouse.click(box["x"] + 40, y)
    wait_for_screen(page, "Image", container.id[:12])

    # The other screens: the launch form, the logs.
    page.keyboard.press("Escape")
    wait_for_screen(page, "Name", "Image", "Status")
    page.keyboard.press("n")
    wait_for_screen(page, "Launch a container on local", "Variant", "Memory")
    page.keyboard.press("Escape")
    wait_for(lambda: "Launch a container" not in screen(page), 10, "the launch form to close")
    page.keyboard.press("l")
    wait_for_screen(page, f"Logs: {container.name} on local", "Timestamps")
    page.keyboard.press("Escape")
    wait_for(lambda: "Logs: " not in screen(page), 10, "the logs to close")
    # A shell needs a terminal to hand over: the tab says so instead of breaking.
    page.keyboard.press("e")
    wait_for_screen(page, "no terminal to hand over")

    assert problems == [], f"the page reported errors: {problems}"
    [pid] = served.session_pids()
    page.close()  # the tab goes: its console goes
    wait_for(lambda: not alive(pid), 10, "the console to end with its tab")
    context.close()


def test_no_console_without_the_token(browser: Any, serve: Callable[..., Served]) -> None:
    served = serve()
    page = browser.new_page()
    response = page.goto(served.base + "/")
    assert response.status == 401
    assert "open the URL with the token" in page.inner_text("body")
    assert page.goto(served.base + "/?token=guess").status == 403
    assert served.session_pids() == []
    page.close()


def test_read_only_console_refuses_actions(
    browser: Any, serve: Callable[..., Served], make_container: Callable[..., Any]
) -> None:
    container = make_container(name=f"web-ro-{int(time.time() * 1000) % 10**8}")
    served = serve("--read-only")
    page = browser.new_page(viewport={"width": 1400, "height": 800})
    page.goto(served.url)
    wait_for_screen(page, container.name, "READ-ONLY")
    page.keyboard.press("x")  # stop
    wait_for_screen(page, "Read-only")
    container.reload()
    assert container.status == "running"
    page.close()
