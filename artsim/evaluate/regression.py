"""Pure metrics of scores against targets: arrays in, dict out.

A metric that is undefined for the data (a correlation of a constant, R² of a constant
target, anything on no data) is None, so that it is written as JSON null instead of NaN.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

Metrics = dict[str, float | int | None]


def finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def correlation(fn: Callable, target: np.ndarray, prediction: np.ndarray) -> float | None:
    """fn(target, prediction).statistic (scipy pearsonr/spearmanr); None with fewer than 2 points or a constant."""
    target, prediction = np.asarray(target, dtype=np.float64), np.asarray(prediction, dtype=np.float64)
    if len(target) < 2 or np.ptp(target) == 0 or np.ptp(prediction) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return finite_or_none(fn(target, prediction).statistic)


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
        "pearson": correlation(stats.pearsonr, target, prediction),
        "spearman": correlation(stats.spearmanr, target, prediction),
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


def mae_by_kind(target: np.ndarray, prediction: np.ndarray, positive: np.ndarray) -> Metrics:
    """MAE on positive pairs and on negative pairs apart (they differ in what they ask of the model)."""
    error = np.abs(np.asarray(prediction, dtype=np.float64) - np.asarray(target, dtype=np.float64))
    positive = np.asarray(positive, dtype=bool)
    return {
        "mae_positive": float(error[positive].mean()) if positive.any() else None,
        "mae_negative": float(error[~positive].mean()) if (~positive).any() else None,
    }


def evaluation_report(target: np.ndarray, prediction: np.ndarray, baseline: float) -> Metrics:
    """The regression part of metrics/evaluate.json."""
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


def pair_aucs(positive: np.ndarray, scores: Mapping[str, np.ndarray]) -> dict[str, float | None]:
    """ROC AUC of each score as a detector of 'this variant derives from this original'; None with one class."""
    positive = np.asarray(positive, dtype=bool)
    if len(np.unique(positive)) < 2:
        return dict.fromkeys(scores)
    return {name: finite_or_none(roc_auc_score(positive, values)) for name, values in scores.items()}


def strength_spearmans(positive: np.ndarray, strength: np.ndarray, scores: Mapping[str, np.ndarray]) -> dict[str, float | None]:
    """Spearman of each score with the variant's strength, on positive pairs only (a negative's
    strength is that of an unrelated variant). A similarity that follows strength is negative."""
    positive = np.asarray(positive, dtype=bool)
    strength = np.asarray(strength, dtype=np.float64)[positive]
    return {name: correlation(stats.spearmanr, strength, np.asarray(values)[positive]) for name, values in scores.items()}
