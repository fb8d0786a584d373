"""The page of `artsim serve` in a real browser: headless Chromium (Debian's chromium and
chromium-driver, which .ci/run installs) driven by selenium through upload -> results ->
comparison, by keyboard; errors shown in the page; readable at phone width; the API docs (Swagger UI, ReDoc)
drawn from the server's own files. The browser has no network beyond the loopback. Saves docs/serve.png.
"""
from __future__ import annotations

import csv
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import ImageOps

from artsim.app.serve import create_app
from artsim.app.service import load_state
from tests.support.helpers import REPO_ROOT, SAMPLE_DIR, write_untrained_model

CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
pytestmark = [pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver "
                                 "(apt-get install -y chromium chromium-driver; .ci/run installs them)"),
              pytest.mark.filterwarnings("ignore::UserWarning")]
SCREENSHOT = REPO_ROOT / "docs" / "serve.png"
QUERY_SOURCE = SAMPLE_DIR / "Post_Impressionism"
# No network but the loopback: every other host name unresolvable, every other address through a dead proxy.
OFFLINE_FLAGS = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=http://127.0.0.1:9")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """A real uvicorn on the loopback, serving an untrained model over the sample paintings."""
    import uvicorn

    model = write_untrained_model(tmp_path_factory.mktemp("model"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARTSIM_CACHE", str(tmp_path_factory.mktemp("cache")))
        state = load_state(Path("."), model=model, originals=SAMPLE_DIR)
    port = free_port()
    uvicorn_server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if uvicorn_server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,1500", *OFFLINE_FLAGS):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def query(tmp_path_factory) -> Path:
    """A derived copy of a sample painting: mirrored, as an uploader might alter it."""
    from artsim.core.images import load_rgb

    source = sorted(QUERY_SOURCE.glob("*.jpg"))[0]
    path = tmp_path_factory.mktemp("query") / "my-upload.jpg"
    ImageOps.mirror(load_rgb(source)).save(path, quality=90)
    return path


def wait_for(browser, condition, what: str, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(lambda _: condition(), message=f"timed out waiting for {what}")


def test_upload_results_and_comparison_by_keyboard(server, browser, query):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server + "/")
    browser.find_element(By.ID, "file").send_keys(str(query))
    results = wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, ".result"), "the search results")
    assert len(results) == 5
    wait_for(browser, lambda: all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
                                  for img in browser.find_elements(By.CSS_SELECTOR, ".result img")), "the originals' images")
    scores = [float(r.find_element(By.CLASS_NAME, "score").text) for r in results]
    # Each hit named "Title — Artist", as the sample's metadata.csv names it.
    named = {f"{row['title']} — {row['artist']}" for row in csv.DictReader((SAMPLE_DIR / "metadata.csv").open())}
    assert all(r.find_element(By.CLASS_NAME, "title").text in named for r in results)
    assert scores == sorted(scores, reverse=True)
    assert not browser.find_element(By.ID, "error").is_displayed()

    results[0].send_keys(Keys.ENTER)  # keyboard: a result is a button, Enter opens the comparison
    plot = browser.find_element(By.ID, "plot")
    wait_for(browser, lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", plot),
             "the difference plot")
    shown = browser.find_element(By.ID, "scores").text
    assert "model score" in shown and "descriptor score" in shown and "color similarity" in shown
    assert results[0].get_attribute("aria-pressed") == "true"
    browser.execute_script("window.scrollTo(0, 0)")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    for _ in range(2):  # the window's height includes the browser's own: grow it until the page fits
        browser.set_window_size(1200, browser.execute_script("return document.documentElement.scrollHeight") + 200)
    browser.save_screenshot(str(SCREENSHOT))
    browser.set_window_size(1200, 1500)


def test_a_bad_upload_is_explained_in_the_page(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n but nothing after")
    browser.get(server + "/")
    browser.find_element(By.ID, "file").send_keys(str(broken))
    error = browser.find_element(By.ID, "error")
    wait_for(browser, error.is_displayed, "the error message")
    assert "Search failed" in error.text and "415" in error.text


def test_the_drop_zone_opens_from_the_keyboard_and_the_page_fits_a_phone(server, browser):
    from selenium.webdriver.common.by import By

    browser.set_window_size(390, 844)
    try:
        browser.get(server + "/")
        drop = browser.find_element(By.ID, "drop")
        assert drop.get_attribute("tabindex") == "0"
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        browser.set_window_size(1200, 1500)


@pytest.mark.parametrize("page, operation", [("/docs", ".opblock-summary-path"),
                                             ("/redoc", "[data-section-id^='operation']")])
def test_the_api_docs_show_every_operation_without_network(server, browser, page, operation):
    from selenium.webdriver.common.by import By

    browser.get(server + page)
    shown = wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, operation), f"the operations of {page}")
    text = browser.find_element(By.TAG_NAME, "body").text
    assert len(shown) >= 5 and all(path in text for path in ("/compare", "/plot", "/search", "/original/", "/health"))
