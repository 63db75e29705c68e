"""The cut-out page in a real browser: Debian's headless Chromium, driven by selenium through
chromedriver, on `carvana-serve` started as a person would (the console script, a free loopback
port) with the real-photo models of the shared `real_run`. It uploads an unseen real photo,
waits for the cut-out, checks its size, its alpha and its mask against the car's true mask,
shows an error readably, and saves a screenshot (also to $CARVANA_SCREENSHOT when set).

With CARVANA_BROWSER=1 (CI) a missing Chromium, chromedriver or selenium fails the test;
without it they skip it, saying what is missing."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

REQUIRED = os.environ.get("CARVANA_BROWSER") == "1"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1280,1000")
DICE_FLOOR = 0.9  # as tests/test_realdata.py: an untrained network scores ~0.3 or 0


def browser_tools() -> tuple[str, str]:
    """Chromium and chromedriver; fail (CI) or skip (elsewhere) naming what is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, found in (("chromium", chromium), ("chromedriver", driver))
               if not found]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        message = (f"the browser test needs {', '.join(missing)}; install them with "
                   "`apt-get install -y chromium chromium-driver`")
        if REQUIRED:
            pytest.fail(f"CARVANA_BROWSER=1 but {message}")
        pytest.skip(message)
    assert chromium and driver
    return chromium, driver


def serve_command() -> list[str]:
    """The installed console script beside this Python, or its module."""
    script = Path(sys.executable).with_name("carvana-serve")
    return [str(script)] if script.exists() else [sys.executable, "-m", "carvana.serve.cli"]


@pytest.fixture(scope="module")
def tools() -> tuple[str, str]:
    return browser_tools()


@pytest.fixture(scope="module")
def server(tools: tuple[str, str], real_run: Path) -> Iterator[str]:
    """carvana-serve on the real run's results, on a free loopback port; yields its URL."""
    results = real_run / "results"
    assert (results / "chain.json").is_file(), f"{results}/chain.json: the submission target " \
        "did not write the chain the segmenter loads"
    proc = subprocess.Popen([*serve_command(), "--models", str(results), "--port", "0",
                             "--queue", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        url = wait_for_url(proc, lines, timeout=300)
        yield url
        assert proc.poll() is None, "carvana-serve died:\n" + "".join(lines[-40:])
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_for_url(proc: subprocess.Popen, lines: list[str], timeout: float) -> str:
    """The URL carvana-serve prints once its models are loaded, when /healthz answers."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"carvana-serve exited {proc.returncode}:\n" + "".join(lines[-40:]))
        found = [m.group(0) for line in list(lines)
                 for m in [re.search(r"http://127\.0\.0\.1:\d+/", line)] if m]
        if found:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(found[0] + "healthz", timeout=5).status_code == 200:
                    return found[0]
        time.sleep(0.5)
    pytest.fail(f"carvana-serve did not answer within {timeout} s:\n" + "".join(lines[-40:]))


@pytest.fixture()
def browser(tools: tuple[str, str], tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium with a fresh profile, driven through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = tools
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_card(driver: Any, index: int, timeout: float) -> Any:
    """The index-th result card once it is done or failed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def finished(d: Any) -> Any:
        cards = d.find_elements(By.CSS_SELECTOR, "#results .card")
        if len(cards) > index and cards[index].get_attribute("data-state") in ("done", "error"):
            return cards[index]
        return False

    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(finished)


FETCH_BLOB = """
const [selector, done] = [arguments[0], arguments[arguments.length - 1]];
const url = document.querySelector(selector).href || document.querySelector(selector).src;
fetch(url).then(r => r.arrayBuffer()).then(buffer => {
  let text = ""; const bytes = new Uint8Array(buffer);
  for (let i = 0; i < bytes.length; i += 0x8000)
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  done(btoa(text));
}).catch(err => done("error: " + err));
"""


def page_png(driver: Any, selector: str) -> np.ndarray:
    """The PNG behind an image or a download link on the page, decoded."""
    encoded = driver.execute_async_script(FETCH_BLOB, selector)
    assert not encoded.startswith("error"), encoded
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))


def unseen_photo(real_run: Path, sample_dir: Path, tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A full-size photo of the held-out car, under a person's kind of name, and its mask."""
    from carvana.io import read_mask

    image_id = sorted(p.stem for p in (real_run.parent / "data/kaggle/test").glob("*.jpg"))[2]
    photo = tmp_path / "my car (1).jpg"
    shutil.copy(sample_dir / "train" / f"{image_id}.jpg", photo)
    return photo, read_mask(sample_dir / "train_masks" / f"{image_id}_mask.gif") > 0


def save_screenshot(driver: Any, tmp_path: Path) -> Path:
    """A screenshot of the page, in the test's folder and at $CARVANA_SCREENSHOT if set."""
    shot = tmp_path / "carvana-serve.png"
    assert driver.save_screenshot(str(shot))
    if os.environ.get("CARVANA_SCREENSHOT"):
        target = Path(os.environ["CARVANA_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target)
    return shot


def test_page_cuts_out_a_real_photo_in_chromium(server: str, browser: Any, real_run: Path,
                                                sample_dir: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo, truth = unseen_photo(real_run, sample_dir, tmp_path)
    browser.get(server)
    WebDriverWait(browser, 30).until(
        lambda d: "Model:" in d.find_element(By.ID, "model").text)
    browser.find_element(By.ID, "files").send_keys(str(photo))
    card = wait_for_card(browser, 0, timeout=300)
    status = card.find_element(By.CSS_SELECTOR, ".status").text
    assert card.get_attribute("data-state") == "done", status

    cutout = card.find_element(By.CSS_SELECTOR, "img.cutout")
    size = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]",
                                  cutout)
    assert size == [truth.shape[1], truth.shape[0]] == [1918, 1280]
    rgba = page_png(browser, "#results .card img.cutout")
    assert rgba.shape == (1280, 1918, 4)
    alpha = rgba[..., 3]
    assert alpha.min() != alpha.max(), "the cut-out's alpha is all one value"
    mask = page_png(browser, "#results .card a.mask")
    assert mask.shape == (1280, 1918) and set(np.unique(mask)) <= {0, 255}
    assert np.array_equal(mask > 0, alpha > 0)
    dice = 2 * ((mask > 0) & truth).sum() / ((mask > 0).sum() + truth.sum())
    assert dice >= DICE_FLOOR, dice
    stats = card.find_element(By.CSS_SELECTOR, ".stats").text
    assert re.search(r"The car covers \d+\.\d% of the 1918×1280 photo", stats), stats
    assert re.search(r"Cut out in \d+\.\d\d s on the server", stats), stats
    links = card.find_elements(By.CSS_SELECTOR, ".downloads a")
    assert [a.get_attribute("download") for a in links] == ["my_car_(1).png",
                                                            "my_car_(1)_mask.png"]
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    save_screenshot(browser, tmp_path)

    not_photo = tmp_path / "notes.jpg"
    not_photo.write_text("a shopping list, not a photo\n")
    browser.find_element(By.ID, "files").send_keys(str(not_photo))
    failed = wait_for_card(browser, 1, timeout=60)
    assert failed.get_attribute("data-state") == "error"
    message = failed.find_element(By.CSS_SELECTOR, ".status").text
    assert "notes.jpg: not a readable JPEG or PNG photo" in message, message
