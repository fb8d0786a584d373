"""The technical report (stage report, artsim.report): every section from a whole run's files,
offline (every image inlined, no outside reference), deterministic, bounded in what it reads,
and robust to missing or damaged inputs and to markup in the metadata."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from artsim.report.document import ReportSettings, code_version, render_html
from artsim.report.examples import pick_originals
from artsim.report.rows import key_values
from tests.support.report_workspace import (
    STRENGTHS,
    Elements,
    build_report_workspace,
    set_metadata,
)

SECTIONS = ["dataset", "descriptors", "training", "results", "thresholds", "transformed", "gallery", "index", "params"]
PARAMS = {"seed": 42, "siamese": {"epochs": 8}}
CODE = {"artsim": "0" * 32 + ".dir"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return build_report_workspace(tmp_path_factory.mktemp("run"))


def render(root: Path, examples: int = 3) -> str:
    return render_html(root, ReportSettings(examples=examples, thumbnail=64), PARAMS, CODE)


def missing_list(html: str) -> str:
    """The text of the report's list of what is missing ('' when it has none)."""
    found = re.search(r'<section class="gaps" id="missing">(.*?)</section>', html, re.DOTALL)
    return found.group(1) if found else ""


def test_a_whole_run_gives_every_section_offline_and_nothing_missing(workspace):
    html = render(workspace)
    elements = Elements(html)
    assert [s["id"] for s in elements.named("section")] == SECTIONS
    assert missing_list(html) == ""
    assert elements.outside_references() == []
    text = re.sub(r'"data:image/(?:png|jpeg);base64,[A-Za-z0-9+/=]*"', '""', html)
    assert not re.search(r"://|url\(|@import|\bsrc=\"//", text, re.IGNORECASE), "an outside URL in the report"
    images = [img["src"] for img in elements.named("img")]
    assert images and all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for src in images)
    # the figures: descriptor study, strength curve, redundancy, 4 curves, confusion, scorers, scatter,
    # 2 error bars, precision/recall, transformed, gallery
    assert len(elements.named("figure")) >= 15
    assert html.count('<div class="example">') == 3
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html)
    assert captions.count("original") == 3 and all(captions.count(f"strength {s:g}") == 3 for s in STRENGTHS)
    for expected in (
        "Warm/broken.jpg",
        "corrupt_image",
        "threshold at 90% precision",
        "<figcaption>mirror</figcaption>",
        "siamese.epochs",
        CODE["artsim"],
        "siamese model",
        "pHash",
        "dHash",
        "SSIM",
        "the run&#39;s headline",
    ):
        assert expected in html, expected


def test_the_same_run_gives_the_same_bytes(workspace):
    assert render(workspace) == render(workspace)


def test_an_empty_workspace_gives_a_report_that_lists_what_is_missing(tmp_path):
    html = render(tmp_path)
    listed = missing_list(html)
    for path in (
        "metrics/ingest.json",
        "data/ingested/manifest.parquet",
        "metrics/score.json",
        "metrics/finetune/plots/metrics",
        "metrics/evaluate.json",
        "metrics/evaluate/scorers.csv",
        "models/verdict.json",
        "metrics/evaluate/gallery.png",
    ):
        assert f"<code>{path}</code>" in listed, path
    assert "Nothing to show" in html
    assert Elements(html).named("img") == []


def test_damaged_inputs_are_named_with_their_reason_and_the_rest_is_shown(workspace, tmp_path):
    damaged = build_report_workspace(tmp_path / "run")
    (damaged / "metrics/evaluate.json").write_text("{not json")
    (damaged / "models/verdict.json").write_text("[1, 2]")
    scorers = pd.read_csv(damaged / "metrics/evaluate/scorers.csv")
    scorers["pair_auc"] = scorers["pair_auc"].astype(object)
    scorers.loc[0, "pair_auc"] = "abc"
    scorers.to_csv(damaged / "metrics/evaluate/scorers.csv", index=False)
    (damaged / "metrics/evaluate/gallery.png").write_bytes(b"\x89PNG\r\n\x1a\n and nothing after")
    (damaged / "metrics/finetune/plots/sklearn/confusion_matrix.json").write_text('{"a": 1}')
    (damaged / "metrics/siamese/plots/metrics/val_mse.tsv").write_text("epoch\tsomething\n0\t1\n")
    (damaged / "data/generated/manifest.parquet").write_bytes(b"PAR1 truncated")
    html = render(damaged)
    listed = missing_list(html)
    for path, why in [
        ("metrics/evaluate.json", "JSONDecodeError"),
        ("models/verdict.json", "not a JSON object"),
        ("metrics/evaluate/scorers.csv", "1 of 9 rows have a value that is not a number"),
        ("metrics/evaluate/gallery.png", "not an image"),
        ("metrics/finetune/plots/sklearn/confusion_matrix.json", "records"),
        ("metrics/siamese/plots/metrics/val_mse.tsv", "lacks the columns"),
        ("data/generated/manifest.parquet", "unreadable"),
    ]:
        assert re.search(f"<code>{re.escape(path)}</code>: [^<]*{re.escape(why)}", listed), (path, why)
    assert "train_mse" in html and "<h2>Descriptor study and weights</h2>" in html  # the intact parts are still there


def test_metadata_is_text_never_markup(tmp_path):
    root = build_report_workspace(tmp_path / "run")
    first = pick_originals(pd.read_parquet(root / "data/ingested/manifest.parquet"), {f"o{i}" for i in range(13)}, 1)
    set_metadata(
        root, first["id"].iloc[0], title='<script>alert("title")</script>', artist="<img src=x onerror=alert(1)>"
    )
    html = render(root)
    elements = Elements(html)
    assert elements.named("script") == []
    assert all(img["src"].startswith("data:") and "onerror" not in img for img in elements.named("img"))
    assert (
        "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    )


def test_the_code_version_is_the_digest_dvc_records_for_the_folder(tmp_path):
    code = tmp_path / "code"
    (code / "sub").mkdir(parents=True)
    (code / "__pycache__").mkdir()
    (code / "sub/x.py").write_text("a = 1\n")
    (code / "y.py").write_text("b = 2\n")
    (code / "__pycache__/y.pyc").write_bytes(b"not code")
    (tmp_path / ".dvcignore").write_text("__pycache__/\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {"cmd": "echo", "deps": ["code"]}}}))
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    for args in (["init", "--no-scm", "-q"], ["commit", "--force", "-q"]):
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=tmp_path, env=env, check=True, capture_output=True)
    recorded = yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]["s"]["deps"][0]["md5"]
    assert code_version([code]) == {"code": recorded}
    (code / "y.py").write_text("b = 3\n")
    assert code_version([code]) != {"code": recorded}


def test_a_metrics_value_of_any_type_is_shown_as_text():
    metrics = {"originals": "many", "nested": {"x": [1, None]}, "none": None, "nan": float("nan"), "ok": 0.123456}
    assert key_values(metrics).rows == [
        ["nan", "—"],
        ["nested.x", "[1, null]"],
        ["none", "—"],
        ["ok", "0.1235"],
        ["originals", "many"],
    ]


def test_a_metrics_file_without_what_a_table_needs_is_a_gap(tmp_path):
    root = build_report_workspace(tmp_path / "run")
    (root / "metrics/evaluate.json").write_text(json.dumps({"model": {"threshold_at_precision_90": [1]}, "mse": "x"}))
    listed = missing_list(render(root))
    for table in ("the run&#39;s headline figures", "each scorer&#39;s thresholds"):
        assert re.search(f"<code>metrics/evaluate.json</code>: lacks what the table &#39;{table}&#39; needs", listed), (
            table
        )
