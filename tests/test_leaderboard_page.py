"""The published HTML page, opened in headless Chromium: no console errors, every table and plot shown.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium chromium-driver``; ``.ci/run``
installs them) and selenium (the ``dev`` extra). Without the browser the test is skipped, unless
``RECIPROCAL_GYM_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where a missing browser fails it.
"""

import os
import shutil
import struct
import zlib

import pytest
from test_leaderboard import _suite

from reciprocal_gym.cli import main

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")) if p
                 and os.path.exists(p)), None)
CHROMEDRIVER = next((p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver")) if p and os.path.exists(p)),
                    None)


def _browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        if os.environ.get("RECIPROCAL_GYM_REQUIRE_BROWSER") == "1":
            pytest.fail("headless Chromium is required here: apt-get install chromium chromium-driver")
        pytest.skip("no chromium / chromedriver on this machine")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_html_page_opens_in_headless_chromium_with_table_and_plots(tmp_path):
    driver = _browser()
    suite = _suite(tmp_path, seeds=2)
    db, page = tmp_path / "board.sqlite", tmp_path / "board.html"
    assert main(["leaderboard", "run", "--suite", str(suite), "--db", str(db)]) == 0
    assert main(["leaderboard", "show", "--db", str(db), "--html", str(page)]) == 0
    try:
        driver.get(page.as_uri())
        assert driver.title.startswith("reciprocal_gym leaderboard: tiny")
        state = driver.execute_script("""
            const imgs = [...document.images];
            return {
              ready: document.readyState,
              tables: document.querySelectorAll('table.leaderboard').length,
              rows: [...document.querySelectorAll('table.leaderboard tbody')].map(b => b.rows.length),
              agents: [...document.querySelectorAll('table.leaderboard tbody td:nth-child(2)')].map(c => c.textContent),
              images: imgs.map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth,
                                      shown: i.getBoundingClientRect().width, alt: i.alt})),
              height: document.documentElement.scrollHeight,
            };""")
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
        assert state["ready"] == "complete"
        assert state["tables"] == 4 and state["rows"] == [3, 2, 3, 2]
        assert {"greedy", "softmax u", "UCB1", "Thompson", "cost"} <= set(state["agents"])
        # one learning-curve panel per task and the verdict chart, each decoded and laid out on the page
        assert len(state["images"]) == 5, state["images"]
        assert all(i["ok"] and i["w"] > 100 and i["shown"] > 100 for i in state["images"]), state["images"]
        driver.set_window_size(1200, min(int(state["height"]) + 100, 6000))
        shot = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    width, height = _png_size(shot)
    assert width >= 1000 and height >= 900
    # the screenshot is not blank: its pixel data does not compress to nothing
    idat = b"".join(shot[i + 8: i + 8 + struct.unpack(">I", shot[i:i + 4])[0]]
                    for i in range(8, len(shot) - 12) if shot[i + 4:i + 8] == b"IDAT")
    assert len(zlib.decompress(idat)) > 0 and len(idat) > 20_000
    out = os.environ.get("RECIPROCAL_GYM_SCREENSHOT")
    if out:
        with open(out, "wb") as f:
            f.write(shot)
