"""Pure metrics of the model's predictions against the target scores: arrays in, dict out
(pair AUC, Spearman with strength and retrieval are artsim.core.metrics).

A metric that is undefined for the data (a correlation of a constant, R² of a constant
target, anything on no data) is None, so that it is written as JSON null instead of NaN.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from artsim.core.metrics import correlation

Metrics = dict[str, float | int | None]


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
