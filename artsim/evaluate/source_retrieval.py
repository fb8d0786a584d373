"""Source retrieval: for each test variant, where does its true original rank among the candidates?

The user's question is "which painting of the collection did this come from", so the
candidates are every original of the collection, of every split: a train painting is a
distractor a real collection holds, and the model never saw the test variants. Beside it
the test-only figure ranks the same queries among the test originals only (easier: fewer
candidates). Each scorer ranks the very same queries among the very same candidates; its
scores arrive as blocks of rows (see artsim.core.metrics), never as the whole matrix.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from artsim.core.metrics import RetrievalMetrics, retrieval_metrics, true_source_ranks

ScoreBlocks = Iterator[tuple[int, np.ndarray]]
CANDIDATE_SETS = ("collection", "test_only")


@dataclass(frozen=True)
class RetrievalTask:
    """Queries (test variants), candidates (originals of every split) and each query's true source."""

    query_ids: list[str]
    query_paths: list[Path]
    candidate_ids: list[str]
    candidate_paths: list[Path]
    true_index: np.ndarray    # (queries,) column of each query's source among all candidates
    test_columns: np.ndarray  # columns of the test-split candidates, in order

    @property
    def test_true_index(self) -> np.ndarray:
        """Each query's source as a position among the test candidates."""
        return np.searchsorted(self.test_columns, self.true_index)


def retrieval_task(test_pairs: pd.DataFrame, collection: pd.DataFrame, usable: set[str]) -> RetrievalTask:
    """Every variant of a positive test pair against every original of `collection` (id, path, split), by id.

    Only images whose id is in `usable` (decoded by every scorer, described when the descriptor
    score takes part) are queries or candidates; a variant whose source is not a usable test
    candidate has nothing to find and is left out.
    """
    candidates = collection.assign(id=collection["id"].astype(str))
    candidates = (
        candidates[candidates["id"].isin(usable)].drop_duplicates("id").sort_values("id").reset_index(drop=True)
    )
    is_test = (candidates["split"] == "test").to_numpy()
    index_of = {image_id: i for i, image_id in enumerate(candidates["id"]) if is_test[i]}
    variants = (
        test_pairs[test_pairs["positive"].astype(bool)].drop_duplicates("generated_id").sort_values("generated_id")
    )
    variants = variants[variants["generated_id"].isin(usable) & variants["original_id"].astype(str).isin(index_of)]
    return RetrievalTask(
        query_ids=variants["generated_id"].astype(str).tolist(),
        query_paths=list(variants["generated_path"]),
        candidate_ids=candidates["id"].tolist(),
        candidate_paths=list(candidates["path"]),
        true_index=np.array([index_of[str(o)] for o in variants["original_id"]], dtype=np.int64),
        test_columns=np.flatnonzero(is_test),
    )


def ranks_among_both(blocks: Iterable[tuple[int, np.ndarray]], task: RetrievalTask) -> tuple[np.ndarray, np.ndarray]:
    """Each query's source rank among all candidates and among the test candidates, from one pass over the blocks."""
    n = len(task.query_ids)
    collection, test_only = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    test_true = task.test_true_index
    for start, block in blocks:
        rows = slice(start, start + len(block))
        collection[rows] = true_source_ranks(block, task.true_index[rows])
        test_only[rows] = true_source_ranks(block[:, task.test_columns], test_true[rows])
    if n and min(collection.min(), test_only.min()) < 1:
        raise ValueError("the blocks did not cover every query")
    return collection, test_only


def retrieval_report(
    task: RetrievalTask, scorers: Mapping[str, Callable[[], ScoreBlocks] | None]
) -> dict[str, dict[str, RetrievalMetrics]]:
    """recall@1, recall@5, MRR of the true source per scorer, among the collection and among test originals.

    `scorers` maps a name to a function giving its score blocks (queries x candidates of
    `task`), or to None where that scorer cannot rank this task (its metrics are then null).
    """
    sizes = {"collection": len(task.candidate_ids), "test_only": len(task.test_columns)}
    report = {}
    for name, blocks in scorers.items():
        # Not ranked (no scorer, or no query): zero queries and null metrics.
        ranks = (
            ranks_among_both(blocks(), task) if blocks is not None and task.query_ids else (np.zeros(0), np.zeros(0))
        )
        report[name] = {kind: retrieval_metrics(found, sizes[kind]) for kind, found in zip(CANDIDATE_SETS, ranks)}
    return report
