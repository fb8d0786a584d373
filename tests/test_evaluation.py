"""Regression metrics on hand-built arrays, test-split prediction, and the three stages chained."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from artsim.evaluation import baseline_metrics, evaluate_on_test, evaluation_report, regression_metrics, train_mean_score
from artsim.models import SiameseRegressor
from tests.test_training import build_tiny_project, resolved_pairs

REPORT_KEYS = {"mse", "mae", "rmse", "r2", "pearson", "spearman", "baseline_mse", "baseline_mae", "n_test_pairs"}


def test_perfect_prediction() -> None:
    target = np.array([0.1, 0.4, 0.35, 0.9])
    metrics = regression_metrics(target, target.copy())
    assert metrics["mse"] == 0.0 and metrics["mae"] == 0.0 and metrics["rmse"] == 0.0
    assert metrics["r2"] == 1.0
    assert metrics["pearson"] == pytest.approx(1.0)
    assert metrics["spearman"] == pytest.approx(1.0)


def test_hand_computed_errors() -> None:
    target = np.array([0.0, 1.0, 0.5, 0.5])
    prediction = np.array([0.5, 0.5, 0.5, 1.0])
    metrics = regression_metrics(target, prediction)
    assert metrics["mse"] == pytest.approx((0.25 + 0.25 + 0 + 0.25) / 4)
    assert metrics["mae"] == pytest.approx((0.5 + 0.5 + 0 + 0.5) / 4)
    assert metrics["rmse"] == pytest.approx(math.sqrt(0.1875))
    # Sum of squared deviations from the target mean (0.5) is 0.5.
    assert metrics["r2"] == pytest.approx(1 - 0.75 / 0.5)
    assert metrics["spearman"] == pytest.approx(-0.0, abs=1e-12)


def test_anti_correlated_prediction() -> None:
    metrics = regression_metrics(np.array([0.1, 0.2, 0.3]), np.array([0.3, 0.2, 0.1]))
    assert metrics["pearson"] == pytest.approx(-1.0)
    assert metrics["spearman"] == pytest.approx(-1.0)


def test_constant_prediction_of_the_baseline_equals_the_baseline() -> None:
    target = np.array([0.2, 0.3, 0.6, 0.45])
    report = evaluation_report(target, np.full(4, 0.4), baseline=0.4)
    assert report["mse"] == pytest.approx(report["baseline_mse"])
    assert report["mae"] == pytest.approx(report["baseline_mae"])
    assert report["pearson"] is None and report["spearman"] is None
    assert report["n_test_pairs"] == 4
    assert set(report) == REPORT_KEYS
    json.dumps(report, allow_nan=False)


def test_baseline_metrics_by_hand() -> None:
    assert baseline_metrics(np.array([0.0, 1.0]), 0.25) == {"baseline_mse": (0.0625 + 0.5625) / 2, "baseline_mae": 0.5}


def test_degenerate_inputs_give_null_not_nan() -> None:
    constant_target = regression_metrics(np.full(3, 0.5), np.array([0.4, 0.5, 0.6]))
    assert constant_target["r2"] is None and constant_target["pearson"] is None
    assert constant_target["mse"] == pytest.approx(0.02 / 3)
    single = regression_metrics(np.array([0.5]), np.array([0.4]))
    assert single["pearson"] is None and single["spearman"] is None
    empty = evaluation_report(np.zeros(0), np.zeros(0), baseline=0.5)
    assert empty["n_test_pairs"] == 0 and empty["mse"] is None and empty["baseline_mse"] is None
    json.dumps(empty, allow_nan=False)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        regression_metrics(np.zeros(3), np.zeros(2))


def test_train_mean_score() -> None:
    pairs = pd.DataFrame({"split": ["train", "train", "test"], "score": [0.2, 0.4, 0.9]})
    assert train_mean_score(pairs) == pytest.approx(0.3)


def test_evaluate_on_test_predicts_usable_test_pairs(tmp_path: Path) -> None:
    paths = build_tiny_project(tmp_path)
    (paths["generated"] / "images/g12.jpg").write_bytes(b"")  # g12 belongs to the test pair (o12, g12)
    pairs = resolved_pairs(paths)
    model = SiameseRegressor(head_hidden=4).eval()
    model.start_at(train_mean_score(pairs))

    report, predictions = evaluate_on_test(model, pairs, image_size=32, batch_size=3)
    assert list(predictions.columns) == ["pair_id", "target", "prediction", "positive", "strength"]
    assert report["n_test_pairs"] == len(predictions) == 3
    assert report["n_skipped_pairs"] == 1
    # An untrained head started at the train mean *is* the baseline.
    assert report["mse"] == pytest.approx(report["baseline_mse"], rel=1e-5)
    assert report["pearson"] is None


def test_stages_chain_on_tiny_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """finetune -> siamese -> evaluate from params.yaml, writing what dvc.yaml declares."""
    build_tiny_project(tmp_path)
    params = {
        "seed": 3,
        "ingest": {"source": "data/sample"},
        "finetune": {"image_size": 32, "epochs": 1, "batch_size": 8},
        "siamese": {"image_size": 32, "epochs": 1, "batch_size": 8, "head_hidden": 8},
        "evaluate": {"batch_size": 8},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    from stages import evaluate, finetune, siamese

    for stage in (finetune, siamese, evaluate):
        stage.main()

    assert json.loads(Path("models/finetune/card.json").read_text())["classes"] == ["Cool", "Warm", "other"]
    finetune_metrics = json.loads(Path("metrics/finetune/metrics.json").read_text())
    assert {"test_accuracy", "test_macro_f1", "val_accuracy", "val_macro_f1"} <= set(finetune_metrics)
    assert Path("metrics/finetune/plots/metrics/train_loss.tsv").is_file()
    assert Path("metrics/siamese/plots/metrics/val_mse.tsv").is_file()
    assert json.loads(Path("models/siamese/card.json").read_text())["head_hidden"] == 8
    report = json.loads(Path("metrics/evaluate.json").read_text())
    assert REPORT_KEYS <= set(report) and report["n_test_pairs"] == 4
    assert len(pd.read_csv("metrics/evaluate/predictions.csv")) == 4
    # dvclive must never write a dvc.yaml of its own next to ours.
    assert not list(tmp_path.rglob("dvc.yaml"))


def test_missing_imagenet_weights_stop_finetune_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_tiny_project(tmp_path)
    params = {"ingest": {"source": "data/sample"}, "finetune": {"weights": "imagenet"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from stages import finetune

    with pytest.raises(SystemExit, match="finetune.weights: none"):
        finetune.main()
    assert not Path("metrics/finetune").exists() and not Path("models/finetune").exists()
