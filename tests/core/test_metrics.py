"""Source retrieval: ranking metrics on hand-built score matrices, and the task (queries, candidates)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from artsim.core.metrics import retrieval_metrics, true_source_ranks
from artsim.evaluate.source_retrieval import ranks_among_both, retrieval_report, retrieval_task


def _metrics(scores: list[list[float]], true_index: list[int]) -> dict:
    scores_array = np.array(scores, dtype=np.float64)
    return retrieval_metrics(true_source_ranks(scores_array, np.array(true_index)), scores_array.shape[1])


def test_a_model_that_scores_the_true_source_highest_is_perfect() -> None:
    # Three variants, four originals; the source of variant i is original (i + 1) % 4.
    scores = [[0.1, 0.9, 0.2, 0.3], [0.4, 0.1, 0.8, 0.7], [0.5, 0.5, 0.1, 0.6]]
    metrics = _metrics(scores, [1, 2, 3])
    assert metrics == {"recall_at_1": 1.0, "recall_at_5": 1.0, "mrr": 1.0, "n_queries": 3, "n_candidates": 4}


def test_known_ranks() -> None:
    scores = [
        [0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5],  # true source (1) second -> rank 2
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],  # true source (6) last -> rank 7
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],  # true source (2) fifth -> rank 5
    ]
    ranks = true_source_ranks(np.array(scores), np.array([1, 6, 2]))
    assert ranks.tolist() == [2, 7, 5]
    metrics = retrieval_metrics(ranks, 7)
    assert metrics["recall_at_1"] == 0.0
    assert metrics["recall_at_5"] == pytest.approx(2 / 3)
    assert metrics["mrr"] == pytest.approx((1 / 2 + 1 / 7 + 1 / 5) / 3)
    single = _metrics(scores[:1], [1])
    assert (single["recall_at_1"], single["recall_at_5"], single["mrr"]) == (0.0, 1.0, 0.5)


def test_ties_count_against_the_true_source() -> None:
    # A constant model must not look perfect: the source ranks below every tied candidate.
    assert true_source_ranks(np.full((2, 5), 0.5), np.array([0, 3])).tolist() == [5, 5]
    assert true_source_ranks(np.array([[0.2, 0.7, 0.7, 0.1]]), np.array([2])).tolist() == [2]
    # A NaN score is the lowest score: for the source it means last, for a rival nothing.
    assert true_source_ranks(np.array([[np.nan, 0.3, 0.1]]), np.array([0])).tolist() == [3]
    assert true_source_ranks(np.array([[0.2, np.nan, 0.1]]), np.array([0])).tolist() == [1]


def test_ranks_match_a_sort_that_puts_the_source_after_its_ties() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 9)).astype(np.float64)  # few values: many ties
    true_index = rng.integers(0, 9, size=50)
    expected = []
    for row, true in zip(scores, true_index):
        is_true = np.arange(len(row)) == true
        order = np.lexsort((is_true, -row))  # by score descending, the source last among equals
        expected.append(int(np.flatnonzero(order == true)[0]) + 1)
    assert true_source_ranks(scores, true_index).tolist() == expected


def test_no_query_gives_null_metrics() -> None:
    metrics = retrieval_metrics(np.zeros(0), n_candidates=4)
    assert metrics == {"recall_at_1": None, "recall_at_5": None, "mrr": None, "n_queries": 0, "n_candidates": 4}
    json.dumps(metrics, allow_nan=False)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        true_source_ranks(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="need scores"):
        true_source_ranks(np.zeros((2, 3)), np.array([0]))


# --- the task: test variants against the whole collection -----------------------------------

def _task_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    collection = pd.DataFrame({
        "id": ["t2", "a1", "t1", "v1", "t3"], "split": ["test", "train", "test", "val", "test"],
        "path": ["t2.jpg", "a1.jpg", "t1.jpg", "v1.jpg", "t3.jpg"],  # t3: a test painting without a variant
    })
    test_pairs = pd.DataFrame({
        "original_id": ["t1", "t2", "t1", "t2"], "generated_id": ["g1", "g2", "g2", "g1"],
        "positive": [True, True, False, False], "generated_path": ["g1.jpg", "g2.jpg", "g2.jpg", "g1.jpg"],
    })
    return test_pairs, collection


def test_candidates_are_the_whole_collection_and_its_test_part() -> None:
    test_pairs, collection = _task_inputs()
    task = retrieval_task(test_pairs, collection, usable={"t1", "t2", "t3", "a1", "v1", "g1", "g2"})
    assert task.candidate_ids == ["a1", "t1", "t2", "t3", "v1"]
    assert task.query_ids == ["g1", "g2"] and task.true_index.tolist() == [1, 2]
    assert task.test_columns.tolist() == [1, 2, 3] and task.test_true_index.tolist() == [0, 1]
    # An unusable image is neither a candidate nor a query; a query whose source is gone is dropped.
    smaller = retrieval_task(test_pairs, collection, usable={"t2", "a1", "g1", "g2"})
    assert smaller.candidate_ids == ["a1", "t2"] and smaller.query_ids == ["g2"] and smaller.true_index.tolist() == [1]


def test_ranks_among_both_candidate_sets_from_one_pass() -> None:
    test_pairs, collection = _task_inputs()
    task = retrieval_task(test_pairs, collection, usable={"t1", "t2", "t3", "a1", "v1", "g1", "g2"})
    #                    a1   t1   t2   t3   v1
    scores = np.array([[0.9, 0.8, 0.1, 0.2, 0.85],   # g1 (source t1): 3rd of all, 1st of the test ones
                       [0.1, 0.2, 0.3, 0.4, 0.0]])   # g2 (source t2): 2nd of all, 2nd of the test ones
    collection_ranks, test_ranks, outside = ranks_among_both([(0, scores[:1]), (1, scores[1:])], task)
    assert collection_ranks.tolist() == [3, 2] and test_ranks.tolist() == [1, 2] and not outside.any()
    # A query no block ranks (outside a sample) has rank 0: the figures are over the ranked queries only.
    collection_ranks, test_ranks, _ = ranks_among_both([(0, scores[:1])], task)
    assert collection_ranks.tolist() == [3, 0] and test_ranks.tolist() == [1, 0]
    report = retrieval_report(task, {"perfect_on_test": lambda: iter([(0, scores)]), "absent": None})
    assert report["perfect_on_test"]["collection"]["mrr"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert report["perfect_on_test"]["test_only"]["n_candidates"] == 3
    assert report["absent"]["collection"] == {"recall_at_1": None, "recall_at_5": None, "mrr": None,
                                              "n_queries": 0, "n_candidates": 5, "outside_shortlist": None}
