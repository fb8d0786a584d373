"""metrics/headline.json: the only DVC metrics file, a few figures picked from evaluate's report."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from artsim.core import layout
from artsim.evaluate.headline import headline

REPO_ROOT = Path(__file__).resolve().parents[2]


def leaves(tree: dict) -> list:
    return [leaf for value in tree.values() for leaf in (leaves(value) if isinstance(value, dict) else [value])]


def test_the_headline_picks_regression_and_each_scorers_figures_and_leaves_out_nulls():
    scorer = {"recall_at_1": 0.5, "pair_auc": 0.75, "threshold_at_precision_90": None, "mrr": 0.6}
    report = {"mse": 0.01, "mae": 0.1, "r2": 0.7, "pearson": 0.9, "model": scorer,
              "fused": {"recall_at_1": 1.0, "pair_auc": None}}
    figures = headline(report)
    assert figures == {"mse": 0.01, "mae": 0.1, "r2": 0.7, "recall_at_1": {"model": 0.5, "fused": 1.0},
                       "auc": {"model": 0.75}, "threshold_90": {}}


def test_the_committed_headline_is_what_the_committed_report_gives_and_is_short():
    report = json.loads((REPO_ROOT / "metrics" / "evaluate.json").read_text(encoding="utf-8"))
    committed = json.loads((REPO_ROOT / layout.HEADLINE).read_text(encoding="utf-8"))
    assert committed == headline(report)
    assert len(leaves(committed)) <= 30


def test_the_headline_is_the_only_dvc_metrics_file():
    dvc_yaml = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    declared = [entry if isinstance(entry, str) else next(iter(entry))
                for stage in dvc_yaml["stages"].values() for entry in stage.get("metrics", [])]
    assert dvc_yaml["metrics"] == declared == [layout.HEADLINE.as_posix()]
