"""The page of `artsim serve` in a real browser: headless Chromium (Debian's chromium and
chromium-driver, which .ci/run installs) driven by selenium through upload -> results ->
comparison, by keyboard; errors shown in the page; readable at phone width. The steps are
scripts/screenshots.py's, which makes docs/serve.png; the API docs (Swagger UI, ReDoc) drawn from the server's
own files, with no
network beyond the loopback; a test writes only under its tmp_path.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.request import urlopen

import pytest
from PIL import Image

from artsim.app.api import open_image
from artsim.app.service import load_state
from artsim.evaluate.verdict import ShippedThresholds, Thresholds
from artsim.learn.model_folder import weights_hash
from scripts.screenshots import (
    CHROMIUM,
    DRIVER,
    chromium,
    mirrored_query,
    open_comparison,
    save_whole_page,
    serving,
    upload,
    wait_for,
)
from tests.support.helpers import SAMPLE_DIR, write_untrained_model

pytestmark = [pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver "
                                 "(apt-get install -y chromium chromium-driver; .ci/run installs them)"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def server(tmp_path_factory, cache) -> Iterator[str]:
    """A real uvicorn on the loopback, serving an untrained model over the sample paintings."""
    model = write_untrained_model(tmp_path_factory.mktemp("model"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARTSIM_CACHE", str(cache))
        state = load_state(Path("."), model=model, originals=SAMPLE_DIR)
    with serving(state) as url:
        yield url


@pytest.fixture(scope="module")
def marked_server(tmp_path_factory, cache, query) -> Iterator[str]:
    """The same, its model shipping a threshold on its score (at 90% precision, on 21 derived / 588 unrelated pairs)
    that the query's best hit reaches and its second does not."""
    model = write_untrained_model(tmp_path_factory.mktemp("marked") / "siamese")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARTSIM_CACHE", str(cache))
        found = load_state(Path("."), model=model, originals=SAMPLE_DIR).search(open_image(query), 2, "model")
        first, second = (hit["score"] for hit in found["results"])
        assert first > second
        thresholds = Thresholds({0.9: (first + second) / 2, 0.99: None}, {0.9: 0.9, 0.99: None}, 21, 588,
                                {0.9: (0.81, 0.98)})
        ShippedThresholds(weights_hash(model), thresholds, default_by="model").save(model.parent / "verdict.json")
        state = load_state(Path("."), model=model, originals=SAMPLE_DIR)
    with serving(state) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def query(tmp_path_factory) -> Path:
    return mirrored_query(tmp_path_factory.mktemp("query"))


def test_upload_results_and_comparison_by_keyboard(server, browser, query, tmp_path):
    from selenium.webdriver.common.by import By

    results = upload(browser, server, query)
    assert len(results) == 5
    scores = [float(r.find_element(By.CLASS_NAME, "score").text) for r in results]
    # Each hit named "Title — Artist", as the sample's metadata.csv names it.
    named = {f"{row['title']} — {row['artist']}" for row in csv.DictReader((SAMPLE_DIR / "metadata.csv").open())}
    assert all(r.find_element(By.CLASS_NAME, "title").text in named for r in results)
    assert scores == sorted(scores, reverse=True)
    assert not browser.find_element(By.ID, "error").is_displayed()
    # Each card says what its score means: here, that no thresholds ship with this model.
    verdicts = [r.find_element(By.CLASS_NAME, "verdict").text for r in results]
    assert all(v.startswith("no verdict by model score: no thresholds shipped with this model") for v in verdicts)

    open_comparison(browser, results[0])
    shown = browser.find_element(By.ID, "scores").text
    assert "model score" in shown and "descriptor score" in shown and "color similarity" in shown
    # The verdict as the sentence the CLI prints (no thresholds ship with this model: it says so), not its code.
    verdict = browser.find_element(By.CSS_SELECTOR, "#scores dt:first-child + dd").text
    assert verdict.startswith("no verdict: no thresholds shipped with this model")
    assert results[0].get_attribute("aria-pressed") == "true"
    screenshot = tmp_path / "serve.png"
    save_whole_page(browser, screenshot)
    page_height = browser.execute_script("return document.documentElement.scrollHeight")
    with Image.open(screenshot) as image:  # the whole page, not the window's part of it
        assert image.format == "PNG" and image.height >= page_height


def test_each_hit_card_shows_its_verdict_sentence(marked_server, browser, query):
    from selenium.webdriver.common.by import By

    results = upload(browser, marked_server, query)
    verdicts = [r.find_element(By.CLASS_NAME, "verdict") for r in results]
    evidence = "; 90% precision, 95% CI 0.81–0.98, on 21 derived / 588 unrelated held-out pairs; few pairs"
    assert verdicts[0].text.startswith("derived: likely (model score = ") and evidence in verdicts[0].text
    assert "derived" in verdicts[0].get_attribute("class").split()  # set apart from the unmarked
    for verdict in verdicts[1:]:
        assert verdict.text.startswith("no evidence of derivation (model score = ") and evidence in verdict.text
        assert "derived" not in verdict.get_attribute("class").split()


def test_the_page_names_the_ranking_in_force_and_lets_the_user_choose_it(server, browser, query):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server + "/")
    choice = Select(wait_for(browser, lambda: browser.find_element(By.ID, "by").find_elements(By.TAG_NAME, "option")
                             and browser.find_element(By.ID, "by"), "the rankings"))
    assert [option.text for option in choice.options] == ["fused", "model", "phash"]
    default = json.loads(urlopen(server + "/health").read())["default_by"]
    assert choice.first_selected_option.text == default  # the server's default, chosen
    browser.find_element(By.ID, "file").send_keys(str(query))
    status = browser.find_element(By.ID, "status")
    wait_for(browser, lambda: f"ranked by {default}." in status.text, "the results by the default ranking")
    assert f"no mark by {default}: no verdict" in status.text  # the legend names the ranking whose thresholds mark
    other = next(name for name in ("fused", "model") if name != default)
    choice.select_by_visible_text(other)  # the query is searched again, by the ranking chosen
    wait_for(browser, lambda: f"ranked by {other}." in status.text, "the results by the ranking chosen")


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
