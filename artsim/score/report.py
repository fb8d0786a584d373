"""metrics/score.json and the score plots: how well each descriptor similarity separates
positive pairs (original, its variant) from negative ones (original, another painting's
variant), as ROC AUC, with counts and mean scores; the same keys on every dataset. The
other descriptors' figures are the descriptor study's (artsim.score.study)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from artsim.core.metrics import pair_aucs
from artsim.params import CLASSIC_SCORE_WEIGHTS, DESCRIPTOR_NAMES

SPLITS = ("train", "val", "test")
# The report's AUC keys: the default-weighted descriptors and the score, whatever the weights, so
# that score.json has the same keys on every run (every descriptor's figures: the study's table).
AUC_COLUMNS = (*CLASSIC_SCORE_WEIGHTS, "score")

def score_report(scored: pd.DataFrame) -> dict:
    """The headline of metrics/score.json, with the same keys on every dataset: counts, mean
    scores, per-descriptor ROC AUC (positives vs negatives) over all pairs and on the test split.
    Breakdowns whose rows depend on the data are score_tables."""
    return {
        "pairs": _counts(scored),
        "mean_score": _mean_scores(scored),
        "auc": _aucs(scored),
        "test_auc": _aucs(scored[scored["split"] == "test"]),
    }


def score_tables(scored: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The breakdowns behind the score plots, by file name: per split, and per strength (positives)."""
    return {"by_split.csv": _table_by_split(scored), "by_strength.csv": _means_by_strength(scored)}


def _table_by_split(scored: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for split, part in _by_split(scored):
        means = _mean_scores(part)
        rows.append({"split": split, **_counts(part), "mean_score_positive": means["positive"],
                     "mean_score_negative": means["negative"], **{f"auc_{k}": v for k, v in _aucs(part).items()}})
    return pd.DataFrame(rows)


def _by_split(scored: pd.DataFrame):
    for split in SPLITS:
        yield split, scored[scored["split"] == split]


def _counts(scored: pd.DataFrame) -> dict[str, int]:
    positives = int(scored["positive"].sum())
    return {"total": len(scored), "positives": positives, "negatives": len(scored) - positives}


def _mean_scores(scored: pd.DataFrame) -> dict[str, float | None]:
    return {
        "positive": _mean(scored.loc[scored["positive"], "score"]),
        "negative": _mean(scored.loc[~scored["positive"], "score"]),
    }


def _aucs(scored: pd.DataFrame) -> dict[str, float | None]:
    """ROC AUC of each similarity as a detector of 'derived from this painting'; None if one class is missing."""
    return pair_aucs(scored["positive"].to_numpy(dtype=bool),
                     {name: scored[name].to_numpy(dtype=np.float64) for name in AUC_COLUMNS})


def _means_by_strength(scored: pd.DataFrame) -> pd.DataFrame:
    """Mean similarities of the positive pairs per strength; a negative pair's strength is that of
    another painting's variant, so negatives are only in the overall means."""
    columns = [*(name for name in DESCRIPTOR_NAMES if name in scored.columns), "score"]
    positives = scored[scored["positive"].astype(bool)]
    table = positives.groupby("strength", sort=True)[columns].mean().reset_index()
    return table.assign(n=positives.groupby("strength", sort=True).size().to_numpy())[["strength", "n", *columns]]


def _mean(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None
