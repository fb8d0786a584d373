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

CANDIDATE_SETS = ("collection", "test_only")
# The share of ranked queries whose source fell outside their shortlist (0 for a dense ranking).
OUTSIDE_SHORTLIST = "outside_shortlist"


@dataclass(frozen=True)
class Shortlisted:
    """Exact scores of each query row's shortlisted candidates; every other candidate scores lowest."""

    rows: np.ndarray     # (r,) query rows of the task
    columns: np.ndarray  # (r, k) candidate columns of each row, distinct within a row, in any order
    scores: np.ndarray   # (r, k)


# (first row, dense (rows, candidates) block), or a Shortlisted block of any query rows.
ScoreBlocks = Iterator[tuple[int, np.ndarray] | Shortlisted]


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


def shortlisted_ranks(block: Shortlisted, true_index: np.ndarray, n_candidates: int,
                      counted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank of each row's true candidate among all `n_candidates` (ties against it, as
    true_source_ranks) when every candidate outside the row's shortlist scores lowest; and whether the
    source was outside (ranked last). `counted`: (r, k) mask of the columns that take part (all: None)."""
    scores = np.nan_to_num(np.asarray(block.scores, dtype=np.float64), nan=-np.inf)
    counted = np.ones(scores.shape, dtype=bool) if counted is None else counted
    hit = (block.columns == np.asarray(true_index)[:, None]) & counted
    inside = hit.any(axis=1)
    true_scores = np.where(hit, scores, -np.inf).max(axis=1, initial=-np.inf)
    above = ((scores >= true_scores[:, None]) & counted).sum(axis=1)
    # A source scoring lowest ties with every candidate left out: last, as in a dense block.
    return np.where(inside & (true_scores > -np.inf), above, n_candidates).astype(np.int64), ~inside


def block_ranks(block: tuple[int, np.ndarray] | Shortlisted, true_index: np.ndarray, n_candidates: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The query rows of a block, the rank of each one's true candidate (true_index: of every query row) among
    all `n_candidates`, and whether it fell outside the row's shortlist."""
    if isinstance(block, Shortlisted):
        return block.rows, *shortlisted_ranks(block, true_index[block.rows], n_candidates)
    start, scores = block
    rows = np.arange(start, start + len(scores))
    return rows, true_source_ranks(scores, true_index[rows]), np.zeros(len(rows), dtype=bool)


def _among_test(block: tuple[int, np.ndarray] | Shortlisted, task: RetrievalTask
                ) -> tuple[np.ndarray, np.ndarray]:
    """The ranks of a block's queries among the test candidates only."""
    if not isinstance(block, Shortlisted):
        start, scores = block
        return block_ranks((start, scores[:, task.test_columns]), task.test_true_index, len(task.test_columns))[:2]
    is_test = np.zeros(len(task.candidate_ids), dtype=bool)
    is_test[task.test_columns] = True
    among_test = Shortlisted(block.rows, task.test_columns.searchsorted(block.columns), block.scores)
    ranks, _ = shortlisted_ranks(among_test, task.test_true_index[block.rows], len(task.test_columns),
                                 counted=is_test[block.columns])
    return block.rows, ranks


def ranks_among_both(blocks: Iterable[tuple[int, np.ndarray] | Shortlisted], task: RetrievalTask
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each ranked query's source rank among all candidates and among the test candidates (0: a query no
    block ranked, e.g. outside a sample), and whether it fell outside its shortlist; from one pass."""
    n = len(task.query_ids)
    collection, test_only = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    outside = np.zeros(n, dtype=bool)
    for block in blocks:
        rows, collection[rows], outside[rows] = block_ranks(block, task.true_index, len(task.candidate_ids))
        rows, test_only[rows] = _among_test(block, task)
    return collection, test_only, outside


def retrieval_report(
    task: RetrievalTask, scorers: Mapping[str, Callable[[], ScoreBlocks] | None]
) -> dict[str, dict[str, RetrievalMetrics]]:
    """recall@1, recall@5, MRR of the true source per scorer, among the collection and among test originals.

    `scorers` maps a name to a function giving its score blocks (queries x candidates of
    `task`), or to None where that scorer cannot rank this task (its metrics are then null). The
    figures are over the queries the blocks rank; the collection's also hold OUTSIDE_SHORTLIST.
    """
    sizes = {"collection": len(task.candidate_ids), "test_only": len(task.test_columns)}
    report = {}
    for name, blocks in scorers.items():
        # Not ranked (no scorer, or no query): zero queries and null metrics.
        collection, test_only, outside = (
            ranks_among_both(blocks(), task) if blocks is not None and task.query_ids else (np.zeros(0),) * 3
        )
        ranked = collection > 0
        report[name] = {kind: retrieval_metrics(found[ranked], sizes[kind])
                        for kind, found in zip(CANDIDATE_SETS, (collection, test_only))}
        report[name]["collection"][OUTSIDE_SHORTLIST] = float(np.mean(outside[ranked])) if ranked.any() else None
    return report


def sampled_rows(n_queries: int, at_most: int | None, seed: int) -> np.ndarray:
    """At most `at_most` of the query rows (None: all): a seeded sample, in row order."""
    if at_most is None or at_most >= n_queries:
        return np.arange(n_queries)
    return np.sort(np.random.default_rng(seed).choice(n_queries, size=at_most, replace=False))
