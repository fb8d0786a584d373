"""The default search ranking: chosen by the MRR over every held-out query, plain and transformed."""
from __future__ import annotations

import pandas as pd
import pytest

from artsim.core.metrics import retrieval_metrics
from artsim.evaluate.breakdowns import SEARCH_RANKINGS, best_search_ranking, mrr_plain_and_transformed
from artsim.evaluate.transformed import OVERALL, TRANSFORMED_COLUMNS, pooled_rows


def plain_retrieval(ranks: dict[str, list[int]], candidates: int = 29) -> dict:
    """retrieval_report's shape: each ranking's metrics among the collection."""
    return {name: {"collection": retrieval_metrics(found, candidates)} for name, found in ranks.items()}


def transformed_table(pooled: dict[str, tuple[float | None, int]]) -> pd.DataFrame:
    """transformed.csv's pooled rows (beside one transform's, made to mislead: only the pooled rows count)."""
    rows = [{"transform": transform, "scorer": name, "mrr": mrr if transform == OVERALL else 1.0, "n_queries": n}
            for name, (mrr, n) in pooled.items() for transform in ("mirror", OVERALL)]
    return pooled_rows(pd.DataFrame(rows).reindex(columns=TRANSFORMED_COLUMNS))


def test_pooled_over_plain_and_transformed_picks_what_plain_alone_would_not() -> None:
    # pHash finds every plain source first and misses mirrored ones; the model is a little worse on plain queries
    # but finds the altered ones as well.
    plain = plain_retrieval({"model": [1, 1, 2, 1], "phash": [1, 1, 1, 1], "fused": [1, 2, 1, 2]})
    plain_only = mrr_plain_and_transformed(plain, transformed_table({}))
    assert plain_only == pytest.approx({"model": 0.875, "phash": 1.0, "fused": 0.75})
    assert best_search_ranking(plain_only) == "phash"
    pooled = mrr_plain_and_transformed(plain, transformed_table({"model": (0.8, 12), "phash": (0.2, 12),
                                                                 "fused": (0.5, 12)}))
    # Each query counts once: 4 plain queries and 12 altered ones.
    assert pooled == pytest.approx({"model": (0.875 * 4 + 0.8 * 12) / 16, "phash": (1.0 * 4 + 0.2 * 12) / 16,
                                    "fused": (0.75 * 4 + 0.5 * 12) / 16})
    assert best_search_ranking(pooled) == "model"


def test_ties_and_missing_figures_go_to_the_first_listed_ranking() -> None:
    assert SEARCH_RANKINGS == ("model", "phash", "fused")
    assert best_search_ranking({"model": 0.5, "phash": 0.5, "fused": 0.5}) == "model"
    # Equal MRRs summed in another order are a tie, not a win by the last bit.
    assert best_search_ranking({"model": 0.3, "phash": 0.1 + 0.2, "fused": 0.3 + 1e-15}) == "model"
    assert best_search_ranking({"model": None, "phash": 0.4, "fused": 0.4}) == "phash"
    assert best_search_ranking({"model": None, "phash": None, "fused": None}) == "model"


def test_a_ranking_that_ranked_no_query_has_no_pooled_mrr() -> None:
    plain = plain_retrieval({"model": [], "phash": [2]})
    pooled = mrr_plain_and_transformed(plain, transformed_table({"phash": (None, 0), "fused": (0.25, 4)}))
    assert pooled == {"model": None, "phash": 0.5, "fused": 0.25}
