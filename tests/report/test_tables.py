"""The documentation's tables are written by docs/gen_tables.py from metrics/ and bench/results/,
never by hand: a committed page that differs from what the generator writes fails here."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from artsim.core import layout
from artsim.report import tables

REPO_ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_tables", REPO_ROOT / "docs" / "gen_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
PAGES = GEN.pages()


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(REPO_ROOT).as_posix() for p in PAGES])
def test_every_committed_table_is_what_the_generator_writes(page: Path):
    text = page.read_text(encoding="utf-8")
    assert GEN.filled(text) == text, f"{page.name}: run python docs/gen_tables.py"


def test_the_generated_pages_hold_the_tables_from_metrics_and_benches():
    names = {m.group("name") for page in PAGES for m in GEN.MARKED.finditer(page.read_text(encoding="utf-8"))}
    assert {"thresholds", "peers", "regression", "transformed", "descriptor_study"} <= names
    assert {name for name in names if name.startswith("bench/")} == {
        f"bench/{path.stem}" for path in (REPO_ROOT / "bench" / "results").glob("*.json")}


def test_a_stale_table_is_rewritten_from_the_metrics():
    stale = "intro\n<!-- table:thresholds -->\n| scorer | typed by hand |\n<!-- /table -->\nafter\n"
    written = GEN.filled(stale)
    report = json.loads((REPO_ROOT / "metrics" / "evaluate.json").read_text(encoding="utf-8"))
    assert "typed by hand" not in written and written.startswith("intro\n") and written.endswith("after\n")
    assert f"| siamese model | {report['model']['threshold_at_precision_90']:.3f} |" in written


def test_a_changed_metric_changes_its_table():
    report = json.loads((REPO_ROOT / "metrics" / "evaluate.json").read_text(encoding="utf-8"))
    before = tables.thresholds(report).markdown()
    report["model"] = {**report["model"], "threshold_at_precision_90": 0.123456, "threshold_positives": 1000}
    after = tables.thresholds(report).markdown()
    assert "| siamese model | 0.123 |" in after and "1,000 /" in after and before != after


def test_missing_figures_print_as_a_dash_and_an_unknown_table_fails():
    assert tables.figure(None) == tables.figure(float("nan")) == "—"
    with pytest.raises(SystemExit, match="unknown table"):
        GEN.table("no_such_table")


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "bench" / "results").glob("*.json")), ids=lambda p: p.stem)
def test_every_bench_result_says_where_it_comes_from(path: Path):
    result = json.loads(path.read_text(encoding="utf-8"))
    assert result["source"].strip() and result["columns"] and result["rows"]
    assert all(len(row) == len(result["columns"]) for row in result["rows"])


def test_the_shown_dvc_exp_show_output_carries_the_committed_headline():
    """The exp-show block is the real output of the recipe (docs/gen_tables.py --exp-show); its
    figures must be those of metrics/headline.json (DVC prints 5 significant digits)."""
    text = (REPO_ROOT / "docs" / "pipeline.md").read_text(encoding="utf-8")
    block = GEN.EXP_SHOW_MARKED.search(text).group("body")
    lines = [line for line in block.splitlines() if line.strip() and not set(line.strip()) <= set("─`")]
    header, rows = lines[0].split(), [line.split() for line in lines[1:]]
    headline = json.loads((REPO_ROOT / layout.HEADLINE).read_text(encoding="utf-8"))
    assert max(len(line) for line in block.splitlines()) <= GEN.EXP_SHOW_WIDTH
    assert len(header) >= 6 and rows
    for column, cell in zip(header[1:], rows[0][1:]):
        value = headline
        for part in column.split("."):
            value = value[part]
        assert float(cell) == pytest.approx(value, rel=1e-4), column


def test_the_readme_quotes_no_measured_figure():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert not re.findall(r"(?<![\w.])0\.\d\d+", readme), "a figure in README.md: link to the generated docs instead"


def test_a_bench_records_its_table_with_the_command_and_commit_that_made_it(tmp_path, monkeypatch):
    from bench import results

    monkeypatch.setattr(results, "RESULTS", tmp_path)
    monkeypatch.setattr(results.sys, "argv", ["bench/serve.py", "--requests", "10"])
    monkeypatch.setattr(results, "_commit", lambda: "abc1234")
    path = results.record("serve", ["what", "p50"], [["POST /compare", "12 ms"]], note="RSS 1 MiB")
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written["source"].startswith("python bench/serve.py --requests 10, at commit abc1234, on ")
    assert written["source"].endswith("; RSS 1 MiB")
    assert tables.bench(written).markdown().splitlines()[-1] == "| POST /compare | 12 ms |"
    with pytest.raises(ValueError, match="2 cells"):
        results.record("serve", ["what", "p50"], [["only one"]])
