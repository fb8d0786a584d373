"""`score.weights: fit`: descriptor weights learned from the train pairs.

A logistic regression of "positive pair" on the candidates' similarities, with every
coefficient bounded at >= 0 (a similarity may only raise the odds of "same painting") and a
free intercept, fitted by L-BFGS-B. The weights are the coefficients divided by their sum:
non-negative, summing to 1, and the weighted score Σ w·s then ranks pairs exactly as the
fitted model does (its logit is intercept + Σc · score). A small L2 penalty keeps the
coefficients finite when a descriptor separates the train pairs perfectly.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit

from artsim.core.errors import NotEnoughData

L2_PENALTY = 1e-3
# Coefficients below this fraction of the largest are rounding noise of the optimiser: weight 0.
NEGLIGIBLE = 1e-6


def fit_weights(similarities: pd.DataFrame, positive: pd.Series | np.ndarray) -> dict[str, float]:
    """Weights by column of `similarities` (one row per train pair), from labels `positive`.

    NotEnoughData when the pairs lack a class, or when no similarity is higher on positives.
    """
    labels = np.asarray(positive, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise NotEnoughData(
            f"score: score.weights: fit needs positive and negative train pairs, train has {positives} positive and "
            f"{negatives} negative; set score.negatives >= 1, or give score.weights as numbers")
    features = similarities.to_numpy(dtype=np.float64)
    coefficients = _constrained_logistic(features, labels.astype(np.float64))
    coefficients[coefficients < NEGLIGIBLE * max(coefficients.max(), 0.0)] = 0.0
    if coefficients.sum() <= 0:
        raise NotEnoughData(
            "score: score.weights: fit found no descriptor whose similarity is higher on the train positive pairs "
            "than on the negative ones; give score.weights as numbers")
    weights = coefficients / coefficients.sum()
    return {str(name): float(w) for name, w in zip(similarities.columns, weights)}


def _constrained_logistic(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Coefficients (>= 0) of a logistic regression with intercept, mean log loss + L2 on the coefficients."""
    count, width = features.shape

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        intercept, coefficients = theta[0], theta[1:]
        logits = intercept + features @ coefficients
        # log(1 + e^z) - y z, written to stay finite for large |z|.
        loss = np.mean(np.logaddexp(0.0, logits) - labels * logits) + L2_PENALTY * coefficients @ coefficients
        residual = (expit(logits) - labels) / count
        gradient = np.concatenate([[residual.sum()], features.T @ residual + 2 * L2_PENALTY * coefficients])
        return float(loss), gradient

    start = np.zeros(width + 1)
    bounds = [(None, None)] + [(0.0, None)] * width
    result = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 1000, "gtol": 1e-9})
    return np.clip(result.x[1:], 0.0, None)

