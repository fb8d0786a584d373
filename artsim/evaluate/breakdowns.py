"""The tables behind the evaluation plots (CSV files under metrics/evaluate/), and the few
figures of each scorer that make the headline of metrics/evaluate.json.

Breakdowns whose keys depend on the data (strengths, styles) live only in the tables, so
that metrics/evaluate.json has the same keys on every dataset.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from artsim.core.metrics import RetrievalMetrics
from artsim.index.query import RANKINGS

# Scorers compared in the headline: the model, the descriptor score it learns, the peers, and the
# model's and pHash's ranks fused (artsim.core.fusion: a ranking only, so no pair figures).
HEADLINE_SCORERS = ("model", "descriptor", "phash", "dhash", "ssim", "fused")
# What `artsim search --by` may default to: the search ranking with the best held-out MRR.
SEARCH_RANKINGS = tuple(RANKINGS)
SCORER_COLUMNS = ["scorer", "pair_auc", "strength_spearman", "recall_at_1", "recall_at_5", "mrr",
                  "recall_at_1_test_only", "recall_at_5_test_only", "mrr_test_only"]
HEADLINE_FIGURES = ("pair_auc", "strength_spearman", "recall_at_1", "recall_at_5", "mrr", "recall_at_1_test_only")


def error_by(predictions: pd.DataFrame, column: str) -> pd.DataFrame:
    """(column, mae, n) per value of `column`, sorted by it."""
    absolute_error = (predictions["prediction"] - predictions["target"]).abs()
    return absolute_error.groupby(predictions[column].rename(column), sort=True).agg(mae="mean", n="size").reset_index()


def error_by_strength(predictions: pd.DataFrame) -> pd.DataFrame:
    """MAE per strength of the positive pairs only: a negative pair's strength is that of a
    variant of another painting, which says nothing about how far this pair is derived."""
    return error_by(predictions[predictions["positive"].astype(bool)], "strength")


def error_by_style(predictions: pd.DataFrame) -> pd.DataFrame:
    """MAE per style of the original, over all its pairs."""
    return error_by(predictions, "style")


def scorer_table(
    pair_auc: Mapping[str, float | None],
    strength_spearman: Mapping[str, float | None],
    retrieval: Mapping[str, Mapping[str, RetrievalMetrics]],
    order: Sequence[str],
) -> pd.DataFrame:
    """One row per scorer (in `order`): pair AUC, Spearman with strength, retrieval among the
    collection and among test originals. Missing figures are NaN (a blank cell in the CSV)."""
    rows = []
    for name in order:
        row: dict[str, Any] = {
            "scorer": name,
            "pair_auc": pair_auc.get(name),
            "strength_spearman": strength_spearman.get(name),
        }
        for kind, suffix in (("collection", ""), ("test_only", "_test_only")):
            metrics = retrieval.get(name, {}).get(kind, {})
            row.update({f"{figure}{suffix}": metrics.get(figure) for figure in ("recall_at_1", "recall_at_5", "mrr")})
        rows.append(row)
    return pd.DataFrame(rows, columns=SCORER_COLUMNS)


def scorer_headline(table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """HEADLINE_FIGURES of each HEADLINE_SCORER, NaN as None (JSON null)."""
    indexed = table.set_index("scorer")
    return {
        name: {
            figure: _none_if_nan(indexed.at[name, figure]) if name in indexed.index else None
            for figure in HEADLINE_FIGURES
        }
        for name in HEADLINE_SCORERS
    }


def _none_if_nan(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def best_search_ranking(table: pd.DataFrame) -> str:
    """The SEARCH_RANKINGS scorer with the best MRR among the collection (held-out queries); ties and
    missing figures go to the first listed (the model)."""
    indexed = table.set_index("scorer")
    mrr = {name: _none_if_nan(indexed.at[name, "mrr"]) if name in indexed.index else None for name in SEARCH_RANKINGS}
    return max(
        SEARCH_RANKINGS, key=lambda name: (mrr[name] if mrr[name] is not None else -1.0, -SEARCH_RANKINGS.index(name))
    )
