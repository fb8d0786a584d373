"""fused's calibrated probability of "derived".

A logistic regression (scikit-learn) of the evidence a search has for every original at no extra cost
(artsim.index.query.QUERY_EVIDENCE: the model's score, the pHash similarity; dHash and the descriptor parts are not
in the index, so a search could not supply them), fitted on the **val** split's held-out pairs
(artsim.evaluate.held_out) only, plain and with the val variant under each held-out alteration
(artsim.evaluate.calibration_pairs: so that a high model score with a low pHash similarity, a mirrored copy, counts
as derived), and judged on the test split's: a reliability table, the Brier score, and the thresholds at a
precision (artsim.evaluate.verdict) on that probability, as for every other scorer.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from artsim.evaluate.calibration_pairs import pairs_by_kind
from artsim.evaluate.verdict import Thresholds, precision_recall_table, threshold_reports
from artsim.index.query import QUERY_EVIDENCE, Calibration

FUSED = "fused"  # the scorer (and search ranking) whose score is the calibrated probability

RELIABILITY_BINS = 10
RELIABILITY_COLUMNS = ["mean_p", "derived_share", "pairs"]
# Light regularisation: the evidence lies in [0, 1], where scikit-learn's default (C = 1) would shrink the
# coefficients of well-separated pairs towards a timid, under-confident probability.
INVERSE_REGULARISATION = 100.0


def evidence_matrix(scores: Mapping[str, np.ndarray], features: tuple[str, ...] = QUERY_EVIDENCE) -> np.ndarray:
    """(pairs, features) of the scores a calibration combines, a missing score (NaN, -inf) as 0 as at query time."""
    columns = [np.asarray(scores[name], dtype=np.float64) for name in features]
    return np.column_stack([np.where(np.isfinite(column), column, 0.0) for column in columns])


def fit_calibration(scores: Mapping[str, np.ndarray], positive: np.ndarray, seed: int,
                    features: tuple[str, ...] = QUERY_EVIDENCE) -> Calibration | None:
    """The logistic regression of `positive` on the `features` of `scores` (validation pairs only: the caller
    passes no test pair); None without both derived and unrelated pairs (nothing to fit)."""
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return None
    fitted = LogisticRegression(C=INVERSE_REGULARISATION, random_state=seed, max_iter=1000)
    fitted.fit(evidence_matrix(scores, features), positive)
    return Calibration(features, tuple(float(c) for c in fitted.coef_[0]), float(fitted.intercept_[0]),
                       int(positive.sum()), int((~positive).sum()))


def calibrated(calibration: Calibration, scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """The calibrated probability of each pair, as a search computes it (Calibration.probability)."""
    return calibration.probability({name: scores[name] for name in calibration.features})


def reliability_table(positive: np.ndarray, probability: np.ndarray, bins: int = RELIABILITY_BINS) -> pd.DataFrame:
    """The reliability curve: per probability bin (equal width, empty bins left out), the mean predicted
    probability, the share of truly derived pairs and the number of pairs; empty without pairs."""
    positive = np.asarray(positive, dtype=bool)
    if not len(positive):
        return pd.DataFrame(columns=RELIABILITY_COLUMNS)
    share, mean_p = calibration_curve(positive, probability, n_bins=bins, strategy="uniform")
    # The pairs in each bin, binned as calibration_curve bins them (it drops the empty ones).
    counts = np.bincount(np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], probability), minlength=bins)
    return pd.DataFrame({"mean_p": mean_p, "derived_share": share, "pairs": counts[counts > 0]},
                        columns=RELIABILITY_COLUMNS)


def calibration_figures(calibration: Calibration | None, positive: np.ndarray, probability: np.ndarray | None,
                        val_pairs: Mapping[str, int]) -> dict[str, Any]:
    """What metrics/evaluate.json says of the calibration: its coefficients, the val pairs it was fitted on
    (`val_pairs`: derived / unrelated, plain / altered, and under how many alterations; see pairs_by_kind), and the
    Brier score on the test pairs (beside the base rate's: always answering the share of derived). The same keys
    without a calibration (null figures, no pair fitted on), so that `dvc metrics diff` compares any two runs."""
    positive = np.asarray(positive, dtype=bool)
    fitted = calibration is not None and len(positive) > 0
    return {
        # One key per feature a search has, whichever the calibration combines (0: not combined).
        "coefficients": {name: dict(zip(calibration.features, calibration.coefficients)).get(name, 0.0)
                         if calibration else None for name in QUERY_EVIDENCE},
        "intercept": calibration.intercept if calibration else None,
        "fitted_on_val": {key: count if calibration else 0 for key, count in val_pairs.items()},
        "brier": float(brier_score_loss(positive, probability)) if fitted else None,
        "brier_base_rate": float(brier_score_loss(positive, np.full(len(positive), positive.mean())))
        if fitted else None,
        "test_positives": int(positive.sum()),
        "test_negatives": int((~positive).sum()),
    }


@dataclass(frozen=True)
class HeldOutVerdicts:
    """Every scorer's thresholds on the held-out test pairs (fused's among them where a calibration was fitted),
    the calibration, its figures for metrics/evaluate.json (null without one) and the tables under
    metrics/evaluate/ (each scorer's precision / recall curve, fused's reliability curve)."""

    thresholds: dict[str, Thresholds]
    calibration: Calibration | None
    report: dict[str, Any]
    tables: dict[str, pd.DataFrame]


def held_out_verdicts(val: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray], seed: int) -> HeldOutVerdicts:
    """fused's calibration fitted on `val` alone (scorer -> scores, "positive", and the kind of each pair:
    artsim.evaluate.calibration_pairs.fitting_scores; plain without one) and every scorer of `test` judged on the test
    pairs: a test pair never moves the calibration, nor a val pair a threshold."""
    calibration = fit_calibration(val, val["positive"], seed)
    positive = np.asarray(test["positive"], dtype=bool)
    scores = {name: values for name, values in test.items() if name != "positive"}
    if calibration is not None:
        scores[FUSED] = calibrated(calibration, scores)
    tables = {f"precision_recall/{name}.csv": precision_recall_table(positive, values)
              for name, values in scores.items()}
    if calibration is not None:
        tables["reliability.csv"] = reliability_table(positive, scores[FUSED])
    return HeldOutVerdicts(threshold_reports(positive, scores), calibration,
                           calibration_figures(calibration, positive, scores.get(FUSED), pairs_by_kind(val)), tables)
