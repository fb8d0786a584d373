"""The documentation's screenshot of `artsim serve`, made on purpose (tests write only under their
temporary folders; tests/test_serve_browser.py drives the page with the same steps).

docs/serve.png: the page after an upload (a mirrored sample painting, as an uploader might alter
it), its top matches and the comparison with the first, in headless Chromium (Debian's chromium
and chromium-driver). It serves the workspace's trained model (after `dvc repro`) unless --model
names another model folder.

Usage: .venv/bin/python scripts/screenshots.py [--model DIR] [--originals data/sample] [--out docs/serve.png]
"""
from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import ImageOps

from artsim.app.serve import create_app
from artsim.app.service import ServiceState, load_state
from artsim.core.images import load_rgb

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
WINDOW = (1200, 1500)
QUERY_SOURCE = REPO_ROOT / "data" / "sample" / "Post_Impressionism"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(state: ServiceState) -> Iterator[str]:
    """A real uvicorn on the loopback serving `state`; yields its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


# No network but the loopback: every other host name unresolvable, every other address through a dead proxy.
OFFLINE_FLAGS = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=http://127.0.0.1:9")


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium under selenium, at WINDOW."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}", *OFFLINE_FLAGS):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def mirrored_query(folder: Path) -> Path:
    """A derived copy of a sample painting: mirrored, as an uploader might alter it."""
    source = sorted(QUERY_SOURCE.glob("*.jpg"))[0]
    path = folder / "my-upload.jpg"
    ImageOps.mirror(load_rgb(source)).save(path, quality=90)
    return path


def wait_for(browser: Any, condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(lambda _: condition(), message=f"timed out waiting for {what}")


def _loaded(browser: Any, image: Any) -> bool:
    return browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)


def upload(browser: Any, url: str, query: Path) -> list[Any]:
    """Upload `query` on the page; returns the result elements once they and their images are shown."""
    from selenium.webdriver.common.by import By

    browser.get(url + "/")
    browser.find_element(By.ID, "file").send_keys(str(query))
    results = wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, ".result"), "the search results")
    images = ".result img"
    wait_for(browser, lambda: all(_loaded(browser, img) for img in browser.find_elements(By.CSS_SELECTOR, images)),
             "the originals' images")
    return results


def open_comparison(browser: Any, result: Any) -> None:
    """Open a result's comparison by keyboard (a result is a button: Enter) and wait for its plot."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    result.send_keys(Keys.ENTER)
    plot = browser.find_element(By.ID, "plot")
    wait_for(browser, lambda: _loaded(browser, plot), "the difference plot")


def save_whole_page(browser: Any, path: Path) -> None:
    """A PNG of the whole page, not only the window's part of it."""
    browser.execute_script("window.scrollTo(0, 0)")
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):  # the window's height includes the browser's own: grow it until the page fits
        browser.set_window_size(WINDOW[0], browser.execute_script("return document.documentElement.scrollHeight") + 200)
    browser.save_screenshot(str(path))
    browser.set_window_size(*WINDOW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a model folder (default: the workspace's trained model)")
    parser.add_argument("--originals", type=Path, default=REPO_ROOT / "data" / "sample")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "serve.png")
    args = parser.parse_args()
    if not (CHROMIUM and DRIVER):
        sys.exit("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    state = load_state(REPO_ROOT, model=args.model, originals=args.originals)
    with tempfile.TemporaryDirectory() as folder, serving(state) as url, chromium() as browser:
        results = upload(browser, url, mirrored_query(Path(folder)))
        open_comparison(browser, results[0])
        save_whole_page(browser, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
