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

# Scorers compared in the headline: the model, the descriptor score it learns, the peers, and fused (the calibrated
# probability of the model's score and pHash's, artsim.evaluate.calibration; without a calibration a rank fusion,
# artsim.core.fusion, that scores no pair).
HEADLINE_SCORERS = ("model", "descriptor", "phash", "dhash", "ssim", "fused")
# What `artsim search --by` may default to: the search ranking with the best MRR over the held-out queries, plain and
# transformed (its key DEFAULT_MRR in metrics/evaluate.json); MRRs equal to TIE_DIGITS decimals tie.
SEARCH_RANKINGS = tuple(RANKINGS)
DEFAULT_MRR = "mrr_plain_and_transformed"
TIE_DIGITS = 12
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


def mrr_plain_and_transformed(retrieval: Mapping[str, Mapping[str, RetrievalMetrics]], pooled: pd.DataFrame
                              ) -> dict[str, float | None]:
    """Per SEARCH_RANKINGS ranking, the MRR of the source over every held-out query: the plain test queries
    (`retrieval`, among the collection) and every altered one (`pooled`: the transformed set's rows of every
    transform together, by scorer, with mrr and n_queries), each query counting once; None where it ranked none.
    What a user meets: a plain variant, or a mirrored, cropped, recompressed one."""
    figures = {}
    for name in SEARCH_RANKINGS:
        plain = retrieval.get(name, {}).get("collection", {})
        altered = (pooled.at[name, "mrr"], pooled.at[name, "n_queries"]) if name in pooled.index else (None, 0)
        figures[name] = _mrr_over_queries([(plain.get("mrr"), plain.get("n_queries") or 0), altered])
    return figures


def _mrr_over_queries(parts: Sequence[tuple[float | None, int]]) -> float | None:
    """The MRR of the queries of every (MRR, queries) part together; None without a query."""
    counted = [(float(mrr), int(n)) for mrr, n in parts if _none_if_nan(mrr) is not None and n > 0]
    queries = sum(n for _, n in counted)
    return sum(mrr * n for mrr, n in counted) / queries if queries else None


def best_search_ranking(mrr: Mapping[str, float | None]) -> str:
    """The SEARCH_RANKINGS ranking of best `mrr` (mrr_plain_and_transformed); ties (to TIE_DIGITS decimals) and
    missing figures go to the first listed: the model, then pHash, then fused."""
    def merit(name: str) -> tuple[float, int]:
        value = mrr.get(name)
        return (round(value, TIE_DIGITS) if value is not None else -1.0, -SEARCH_RANKINGS.index(name))

    return max(SEARCH_RANKINGS, key=merit)
