"""The run's report in a real browser with the network unreachable: headless Chromium (Debian's
chromium and chromium-driver, which .ci/run installs) opens report.html from disk and every
figure and example renders from the file alone.

Run as a script it photographs a report for the docs (a script, not a hand, makes the figure):
    python -m tests.report.test_document_browser data/report/report.html docs/report.png
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from artsim.report.document import ReportSettings, render_html
from tests.support.report_workspace import Elements, build_report_workspace

CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver "
    "(apt-get install -y chromium chromium-driver; .ci/run installs them)",
)
# Every request that would leave the machine fails: no name resolves, the proxy is a closed port.
OFFLINE_FLAGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)
ALL_IMAGES_SHOWN = "return Array.from(document.images).every(img => img.complete && img.naturalWidth > 0)"


def offline_browser(width: int = 1200, height: int = 1500):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        *OFFLINE_FLAGS,
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )
    return driver


def open_report(driver, html: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(html.resolve().as_uri())
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")


@pytest.fixture(scope="module")
def browser():
    driver = offline_browser()
    yield driver
    driver.quit()


def test_every_figure_renders_offline(browser, tmp_path):
    root = build_report_workspace(tmp_path / "run")
    html = tmp_path / "report.html"
    html.write_text(
        render_html(root, ReportSettings(examples=2, thumbnail=96), {"seed": 42}, {"artsim": "0.dir"}), encoding="utf-8"
    )
    assert Elements(html.read_text(encoding="utf-8")).outside_references() == []
    open_report(browser, html)
    assert browser.execute_script("return navigator.onLine") is False  # the network really is off
    shown = browser.execute_script("return document.images.length")
    assert shown >= 2 * 3 + 7 + 15  # examples with their variants, the alterations, the figures
    assert browser.execute_script(ALL_IMAGES_SHOWN)
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(name.startswith("data:") for name in fetched), fetched


def screenshot(html: Path, png: Path, width: int = 1200, height: int = 2600) -> None:
    """The top of the report as a reader first sees it, after every image has rendered."""
    driver = offline_browser(width, height)
    try:
        open_report(driver, html)
        if not driver.execute_script(ALL_IMAGES_SHOWN):
            raise SystemExit(f"{html}: an image of the report did not render")
        png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
