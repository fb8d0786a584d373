"""`dvc plots show` draws every plot with no network: .dvc/config names a page template
(.dvc/plots/offline.html) with Vega, Vega-Lite and Vega-Embed inlined, where DVC's own template
loads them from a CDN. Checked in headless Chromium (Debian's chromium and chromium-driver, as in
tests/test_serve_browser.py) with every host name unresolvable and a dead proxy."""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver "
                                "(apt-get install -y chromium chromium-driver)")
# No name resolves and every request goes to a closed port: a page that needs the network draws nothing.
OFFLINE_FLAGS = ("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9")
# Per element that vegaEmbed fills (ids given): are data marks drawn? Vega paints axes, text and
# grid in greys and the data in colour (DVC colours each revision), so a canvas with a coloured
# pixel holds marks; an svg renderer would hold mark groups.
DRAWN = """
return arguments[0].map(id => {
  const d = document.getElementById(id);
  const canvas = d && d.querySelector('canvas.marks'), svg = d && d.querySelector('svg.marks');
  if (svg) return [id, svg.querySelectorAll('.mark-rect path, .mark-line path, .mark-symbol path').length \
? 'marks' : 'axes'];
  if (!canvas || !canvas.width || !canvas.height) return [id, 'nothing'];
  const p = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = false;
  for (let i = 0; i < p.length; i += 4) {
    if (p[i + 3] === 0) continue;
    painted = true;
    if (Math.max(p[i], p[i + 1], p[i + 2]) - Math.min(p[i], p[i + 1], p[i + 2]) > 60) return [id, 'marks'];
  }
  return [id, painted ? 'axes' : 'nothing'];
});
"""

# Loading the page (browser.get) runs its <script src> tags first, loaded or failed.
NO_VEGA_EMBED = "return typeof vegaEmbed === 'undefined'"


def plots_page(tmp_path: Path, template: bool) -> Path:
    """`dvc plots show` of the committed metrics, in a copy of what it reads; its page."""
    work = tmp_path / ("offline" if template else "dvc-default")
    work.mkdir()
    for name in ("dvc.yaml", "params.yaml", "metrics"):
        source = REPO_ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / name)
    shutil.copytree(REPO_ROOT / ".dvc" / "plots", work / ".dvc" / "plots")
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / ".dvc" / "config")
    if not template:
        config.remove_section("plots")
    with open(work / ".dvc" / "config", "w") as out:
        config.write(out)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "-o", "out"], cwd=work, check=True, capture_output=True
    )
    return work / "out" / "index.html"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", *OFFLINE_FLAGS):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def plot_ids(page: Path) -> dict[str, str]:
    """Each Vega plot on DVC's page (`<div id = "<id>">` ... `vegaEmbed('#<id>', spec)`) and what it
    must show: 'marks', or None where its data file has no rows (on the sample nothing is skipped by
    ingest or failed by generate): Vega-Lite draws no chart from no data, online or not."""
    html = page.read_text(encoding="utf-8")
    blocks = re.findall(r'<div id = "([^"]+)">(.*?)vegaEmbed\(\'#([^\']+)\'', html, re.DOTALL)
    assert all(first == second for first, _, second in blocks)
    return {name: None if "var spec = {};" in spec else "marks" for name, spec, _ in blocks}  # DVC's empty spec


def shows(drawn: dict[str, str], expected: dict[str, str | None]) -> bool:
    return all(expected[name] in (None, shown) for name, shown in drawn.items())


def drawn_plots(browser, page: Path) -> dict[str, str]:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    expected = plot_ids(page)
    browser.get(page.as_uri())
    try:  # vegaEmbed draws asynchronously: wait until every plot shows what it must, or give up and report
        # (at once where the page loaded without Vega-Embed: its scripts failed to load, nothing will ever draw)
        WebDriverWait(browser, 20).until(
            lambda driver: driver.execute_script(NO_VEGA_EMBED)
            or shows(dict(driver.execute_script(DRAWN, list(expected))), expected)
        )
    except TimeoutException:
        pass
    return dict(browser.execute_script(DRAWN, list(expected)))


def test_the_config_names_the_committed_offline_template():
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / ".dvc" / "config")
    template = REPO_ROOT / ".dvc" / config["plots"]["html_template"]
    text = template.read_text(encoding="utf-8")
    assert "{plot_divs}" in text and "{scripts}" not in text  # DVC's CDN <script src> tags are never inserted
    assert "<script src" not in text and "vegaEmbed" in text


def test_every_plot_of_dvc_plots_show_draws_without_network(tmp_path, browser):
    page = plots_page(tmp_path, template=True)
    assert "cdn.jsdelivr.net" not in page.read_text(encoding="utf-8")
    drawn, expected = drawn_plots(browser, page), plot_ids(page)
    declared = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["plots"]
    # every plot of dvc.yaml but the gallery image; the dvclive folders hold one plot per curve
    assert len(expected) >= len(declared) - 1 and list(expected.values()).count("marks") >= len(expected) - 2
    assert drawn.keys() == expected.keys() and shows(drawn, expected), \
        {name: shown for name, shown in drawn.items() if expected[name] not in (None, shown)}


def test_dvcs_own_template_draws_nothing_without_network(tmp_path, browser):
    """The control: the same browser, the same plots, DVC's CDN template: so the test can fail."""
    drawn = drawn_plots(browser, plots_page(tmp_path, template=False))
    assert drawn and set(drawn.values()) == {"nothing"}, drawn
