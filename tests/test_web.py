"""`cqgov web`: the console served by textual-serve, loaded by a real headless Chromium on 127.0.0.1.

xterm.js draws on a canvas, so the page's DOM holds no text; the test reads
what the page itself received on its websocket (the terminal stream Textual
writes) and waits, with a deadline, until the four panes' titles have arrived.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

CHROMIUM = "/usr/bin/chromium"
PANES = ("事件", "地图", "跑道", "政令")
DEADLINE_S = 90.0
_ESCAPES = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78DEHMNOP]")

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web(tmp_path):
    from cqgov_tui.store import init_store

    db = str(tmp_path / "console.duckdb")
    init_store(db, "district", "500108").close()
    port = _free_port()
    log = open(tmp_path / "web.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "cqgov_tui", "web", "--host", "127.0.0.1", "--port", str(port),
                             "--", "--db", db], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    give_up = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > give_up:
                proc.kill()
                pytest.fail(f"cqgov web did not listen: {(tmp_path / 'web.log').read_text()[-800:]}")
            time.sleep(0.1)
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and each session's console
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


def test_a_browser_loads_the_console_and_sees_the_four_panes(web):
    from playwright.sync_api import sync_playwright

    received: list[bytes] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("websocket", lambda ws: ws.on(
                "framereceived", lambda payload: received.append(payload if isinstance(payload, bytes)
                                                                 else payload.encode())))
            page.goto(web, wait_until="load")
            page.wait_for_selector("#terminal .xterm", timeout=30_000)  # xterm.js mounted its terminal
            give_up = time.monotonic() + DEADLINE_S
            while True:
                screen = _ESCAPES.sub(b"", b"".join(received)).decode("utf-8", "replace")
                missing = [t for t in PANES if t not in screen]
                if not missing:
                    break
                if time.monotonic() > give_up:
                    raise AssertionError(f"after {DEADLINE_S:.0f} s the page had not received panes {missing}; "
                                         f"got {len(screen)} characters")
                page.wait_for_timeout(200)
            assert page.locator("#terminal canvas").count() > 0  # drawn, not just received
        finally:
            browser.close()
