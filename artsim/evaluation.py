"""How well the siamese model regresses the descriptor score, against a constant baseline.

The metric functions are pure (arrays in, dict out). A metric that is undefined for
the data (a correlation of a constant, R² of a constant target, anything on no data)
is None, so that it is written as JSON null instead of NaN.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from artsim.models import PairImages, SiameseRegressor, default_device, predict_pairs, usable_pairs

Metrics = dict[str, float | int | None]


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _correlation(fn, target: np.ndarray, prediction: np.ndarray) -> float | None:
    if len(target) < 2 or np.ptp(target) == 0 or np.ptp(prediction) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return _finite_or_none(fn(target, prediction).statistic)


def regression_metrics(target: np.ndarray, prediction: np.ndarray) -> Metrics:
    """mse, mae, rmse, r2, pearson, spearman of `prediction` against `target`."""
    target = np.asarray(target, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    if target.shape != prediction.shape:
        raise ValueError(f"target and prediction differ in shape: {target.shape} vs {prediction.shape}")
    if target.size == 0:
        return dict.fromkeys(("mse", "mae", "rmse", "r2", "pearson", "spearman"))
    error = prediction - target
    mse = float(np.mean(error**2))
    spread = float(np.sum((target - target.mean()) ** 2))
    return {
        "mse": mse,
        "mae": float(np.mean(np.abs(error))),
        "rmse": math.sqrt(mse),
        # R² compares with predicting the target's own mean; undefined when the target is constant.
        "r2": 1.0 - float(np.sum(error**2)) / spread if spread > 0 else None,
        "pearson": _correlation(stats.pearsonr, target, prediction),
        "spearman": _correlation(stats.spearmanr, target, prediction),
    }


def baseline_metrics(target: np.ndarray, baseline: float) -> Metrics:
    """The errors of predicting `baseline` (the train-split mean score) for every pair."""
    target = np.asarray(target, dtype=np.float64)
    if target.size == 0:
        return {"baseline_mse": None, "baseline_mae": None}
    return {
        "baseline_mse": float(np.mean((target - baseline) ** 2)),
        "baseline_mae": float(np.mean(np.abs(target - baseline))),
    }


def evaluation_report(target: np.ndarray, prediction: np.ndarray, baseline: float) -> Metrics:
    """Everything metrics/evaluate.json holds, but for the count of skipped pairs."""
    return {
        **regression_metrics(target, prediction),
        **baseline_metrics(target, baseline),
        "n_test_pairs": int(np.asarray(target).size),
    }


def train_mean_score(pairs: pd.DataFrame) -> float:
    train_scores = pairs.loc[pairs["split"] == "train", "score"]
    if train_scores.empty:
        raise ValueError("no train pairs: the mean-score baseline is undefined")
    return float(train_scores.mean())


def evaluate_on_test(
    model: SiameseRegressor,
    pairs: pd.DataFrame,
    image_size: int,
    batch_size: int,
) -> tuple[Metrics, pd.DataFrame]:
    """Predict every usable test pair; return the report and one row per predicted pair.

    `pairs` is the output of `artsim.models.resolve_pairs` (all splits: the baseline
    is the train split's mean score).
    """
    baseline = train_mean_score(pairs)
    model.to(default_device())
    test_pairs, skipped = usable_pairs(pairs[pairs["split"] == "test"].reset_index(drop=True))
    indices, prediction = predict_pairs(model, PairImages(test_pairs, image_size), batch_size)
    predicted = test_pairs.iloc[indices]
    predictions = pd.DataFrame({
        "pair_id": predicted["pair_id"].to_numpy(),
        "target": predicted["score"].to_numpy(dtype=np.float64),
        "prediction": prediction.astype(np.float64),
        "positive": predicted["positive"].to_numpy(dtype=bool),
        "strength": predicted["strength"].to_numpy(),
    })
    report = evaluation_report(predictions["target"].to_numpy(), predictions["prediction"].to_numpy(), baseline)
    report["n_skipped_pairs"] = skipped + len(test_pairs) - len(indices)
    return report, predictions
