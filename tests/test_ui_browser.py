"""End to end in a real browser: `clipsearch ui` serving a small indexed store, driven by
headless Debian Chromium through Selenium (no browser downloads: the system chromium and
chromedriver are used, so Selenium Manager never runs).

Screenshots go to the test's tmp folder; the search grid is also copied to
/tmp/clipsearch-ui-screenshot.png for people to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
if not CHROMIUM.exists():
    pytest.skip(
        "needs Debian's chromium at /usr/bin/chromium (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from conftest import MODEL, ok, pattern_image, run_cli, save_image  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SHARED_SCREENSHOT = Path("/tmp/clipsearch-ui-screenshot.png")
N_IMAGES = 10
START_TIMEOUT = 60
WAIT = 45
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clipsearch_command() -> list[str]:
    script = Path(sys.executable).parent / "clipsearch"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from clipsearch.cli import main; main()"]


def wait_until_answering(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"clipsearch ui exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"clipsearch ui did not answer on {url} within {START_TIMEOUT} s:\n{log.read_text()}")


@pytest.fixture
def served_store(tmp_path):
    """`clipsearch ui` on a free port, serving a freshly indexed store; yields its URL."""
    photos, home = tmp_path / "photos", tmp_path / "home"
    for i in range(N_IMAGES):
        # Larger, busier pictures than the unit tests use, so the screenshot shows something.
        save_image(pattern_image(100 + i, size=(320, 240), grid=(8, 6)), photos / f"photo{i:02d}.jpg")
    ok(run_cli("--home", home, "index", photos, "--model", MODEL))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "ui.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*clipsearch_command(), "--home", str(home), "ui", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_answering(url, proc, log)
        assert f"at {url}" in log.read_text()
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)  # forwarded to streamlit by `clipsearch ui`
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def rendered_images(driver) -> int:
    """Result thumbnails that have actually loaded and decoded in the page."""
    return driver.execute_script(
        "return [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
        ".filter(img => img.complete && img.naturalWidth > 0).length;"
    )


def page_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def test_search_and_more_like_this_in_chromium(served_store, browser, tmp_path):
    wait = WebDriverWait(browser, WAIT, poll_frequency=0.25)
    browser.get(served_store)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='Search']"))
    box.send_keys("a colourful mosaic", Keys.ENTER)
    wait.until(lambda d: rendered_images(d) >= N_IMAGES)
    text = page_text(browser)
    assert f"{N_IMAGES} results · search took" in text
    assert "#1 · score" in text and f"#{N_IMAGES} · score" in text
    out = tmp_path / "screenshots"
    out.mkdir()
    assert browser.save_screenshot(str(out / "search.png"))
    shutil.copyfile(out / "search.png", SHARED_SCREENSHOT)

    shown = re.findall(r"photo\d\d\.jpg", text)
    assert sorted(shown) == [f"photo{i:02d}.jpg" for i in range(N_IMAGES)]
    like = browser.find_elements(By.XPATH, "//button[normalize-space(.)='More like this']")
    assert len(like) == N_IMAGES
    like[3].click()
    wait.until(lambda d: "Showing images like" in page_text(d))
    assert re.search(rf"Showing images like \S+/{shown[3]}", page_text(browser))
    wait.until(lambda d: rendered_images(d) >= N_IMAGES and "score 1.000" in page_text(d))
    assert browser.find_element(By.CSS_SELECTOR, "input[aria-label='Search']").get_attribute("value") == ""
    assert browser.save_screenshot(str(out / "more-like-this.png"))

    browser.find_elements(By.XPATH, "//button[normalize-space(.)='Open']")[1].click()
    wait.until(lambda d: "Download original" in page_text(d) and "Dimensions: 320 × 240 px" in page_text(d))
    assert browser.save_screenshot(str(out / "opened.png"))
    assert (out / "search.png").stat().st_size > 10_000
