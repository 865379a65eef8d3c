"""The demo end to end: a short transcript as Slack shows it, and its page of messages
opened in a real headless Chromium (the operating system's package, driven by Selenium
through the matching chromedriver), screenshotted, with no console errors."""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path

import pytest
from rich.console import Console

from cli.demo.run import run_demo
from commands.settings import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("demo")
    console = Console(record=True, width=100, force_terminal=False, color_system=None)
    page = run_demo(out, customers=600, console=console, settings=Settings())
    return console.export_text(), page


@pytest.mark.slow
def test_the_transcript_is_short_and_shows_what_slack_shows(demo) -> None:
    text, _ = demo
    lines = text.splitlines()
    assert len(lines) < 150
    assert not re.search(r"<@U[A-Z0-9]+>", text)  # mentions are names
    assert "@Carmen (head of CS)" in text
    assert not re.search(r"(?<![\w*])\*[A-Z][^*\n]+\*(?![\w*])", text)  # bold is styled
    assert "first snapshot: " in text
    assert re.search(r"Churn risk [+−]\d+ % to [\d,]+ members", text)


@pytest.mark.slow
def test_the_page_shows_every_message_laid_out_like_block_kit(demo) -> None:
    _, page = demo
    html = page.read_text(encoding="utf-8")
    for css_class in ("header", "section", "fields", "context", "actions", "divider"):
        assert f'class="{css_class}' in html
    assert 'class="button primary"' in html and ">Acknowledge</button>" in html
    charts = re.findall(r'<img src="([^"]+\.png)"', html)
    assert charts and all((page.parent / src).is_file() for src in charts)
    assert "&lt;@U" not in html and "<@U" not in html
    assert "joined · " in html and "first snapshot: " in html


@pytest.mark.slow
def test_the_page_opens_in_headless_chromium_without_console_errors(demo, tmp_path) -> None:
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("chromium and chromium-driver are not installed (apt-get install them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    _, page = demo
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=900,1400")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(page.resolve().as_uri())
        assert driver.title.startswith("segops demo")
        assert len(driver.find_elements(By.CSS_SELECTOR, "article.message")) >= 20
        images = driver.find_elements(By.CSS_SELECTOR, "figure.file img")
        assert images and all(
            driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
            == 960
            for i in images
        )
        shot = tmp_path / "messages.png"
        assert driver.save_screenshot(str(shot))
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24])[0] > 0
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
    finally:
        driver.quit()
