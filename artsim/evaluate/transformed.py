"""The held-out transformed evaluation: every test variant also under each alteration of
artsim.core.alterations.EVALUATION (mirror, crop_70, half_size, jpeg_40, rotate_5, greyscale,
combined: mirror then crop_70 then jpeg_40),
made here from the variant file and never written to disk, so no training stage can see it.

Each altered variant is a query among all originals (the plain task's candidates), ranked as the
plain queries are (artsim.evaluate.scorer_inputs: the costly scorers within each query's shortlist),
and each of its test pairs (its source: derived; the unrelated original of its negative pair) is
scored exactly by each scorer; fused as on the plain set (the search ranking, with the calibration fitted on val
pairs, plain and with the val variants under these alterations: artsim.evaluate.calibration_pairs). Every scorer
judges the very same altered images: the variants of a seeded sample of the plain queries
(TransformedTask.query_rows; all of them unless capped).
Every alteration is deterministic (fixed settings, no randomness), so the set is too.
Memory: one alteration's queries at a time (an embedding, descriptors and a thumbnail each).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from artsim.core.alterations import EVALUATION, Alteration
from artsim.core.images import ImageFile, ImageRejected, load_rgb
from artsim.core.metrics import pair_aucs, retrieval_metrics
from artsim.describe.table import Descriptors
from artsim.evaluate.peers import HASH_NAMES, signature
from artsim.evaluate.scorer_inputs import (
    SCORER_NAMES,
    DescriptorWeighting,
    ScorerInputs,
    Shortlisting,
    exact_scorers,
    score_blocks,
)
from artsim.evaluate.shortlists import ExactScores
from artsim.evaluate.source_retrieval import OUTSIDE_SHORTLIST, RetrievalTask, ScoreBlocks, block_ranks
from artsim.index.query import Calibration
from artsim.learn.models import SiameseRegressor, pair_transform
from artsim.score.similarity import DescriptorSet

log = logging.getLogger(__name__)

TRANSFORMED_COLUMNS = ["case", "transform", "scorer", "pair_auc", "recall_at_1", "mrr", "n_queries", "n_pairs",
                       OUTSIDE_SHORTLIST]
TRANSFORMED_FIGURES = ("pair_auc", "recall_at_1", "mrr")  # the share outside the shortlist: in the table
OVERALL = "all"


@dataclass(frozen=True)
class TransformedTask:
    """The plain retrieval task, the query rows whose variants are altered (in order), and their test pairs to
    score as (query row, candidate column, derived)."""

    task: RetrievalTask
    pair_rows: np.ndarray
    pair_columns: np.ndarray
    pair_positive: np.ndarray
    query_rows: np.ndarray


def transformed_task(task: RetrievalTask, test_pairs: pd.DataFrame, query_rows: np.ndarray | None = None
                     ) -> TransformedTask:
    """The test pairs whose variant is a query (of `query_rows`, sorted; None: all) and whose original a
    candidate of `task`."""
    query_rows = np.arange(len(task.query_ids)) if query_rows is None else np.asarray(query_rows, dtype=np.int64)
    row_of = {task.query_ids[i]: int(i) for i in query_rows}
    column_of = {image_id: i for i, image_id in enumerate(task.candidate_ids)}
    kept = test_pairs[
        test_pairs["generated_id"].astype(str).isin(row_of) & test_pairs["original_id"].astype(str).isin(column_of)
    ]
    return TransformedTask(task,
                           np.array([row_of[str(i)] for i in kept["generated_id"]], dtype=np.int64),
                           np.array([column_of[str(i)] for i in kept["original_id"]], dtype=np.int64),
                           kept["positive"].to_numpy(dtype=bool),
                           query_rows)


@dataclass(frozen=True)
class AlteredReaders:
    """How an altered image is read by each scorer: the model's input size, the descriptor score's describe."""

    model: SiameseRegressor
    image_size: int
    batch_size: int
    device: torch.device
    describe: Callable[[Image.Image], Descriptors] | None
    with_greys: bool


def evaluate_transformed(
    setup: TransformedTask, candidates: ScorerInputs, readers: AlteredReaders, weighting: DescriptorWeighting | None,
    alterations: Mapping[str, Alteration] = EVALUATION, shortlisting: Shortlisting = Shortlisting(),
    calibration: Calibration | None = None,
) -> pd.DataFrame:
    """TRANSFORMED_COLUMNS per (alteration, scorer), then the pooled rows (transform = OVERALL). fused ranks and
    scores pairs as on the plain set, with `calibration` (fitted on val pairs alone: nothing here moves it)."""
    pooled: dict[str, list[_Judged]] = {}
    rows = []
    n_candidates = len(setup.task.candidate_ids)
    for name, alteration in alterations.items():
        kept, queries = altered_inputs([setup.task.query_paths[i] for i in setup.query_rows], alteration, readers)
        kept = setup.query_rows[kept]  # the task's query rows of the altered variants
        blocks = score_blocks(readers.model, queries, candidates, weighting, readers.device, with_fused=True,
                              shortlisting=Shortlisting(shortlisting.size), calibration=calibration)
        exact = exact_scorers(readers.model, queries, candidates, weighting, readers.device, calibration)
        for scorer in blocks:
            judged = _judged(setup, kept, blocks[scorer], exact[scorer])
            pooled.setdefault(scorer, []).append(judged)
            rows.append(_row(name, scorer, judged, n_candidates))
    for scorer, parts in pooled.items():
        rows.append(_row(OVERALL, scorer, _Judged(*(np.concatenate(arrays) for arrays in zip(*parts))), n_candidates))
    return pd.DataFrame(rows, columns=TRANSFORMED_COLUMNS)


class _Judged(NamedTuple):
    """One scorer's judgement of altered queries: each query's source rank and whether it fell outside its
    shortlist (empty: it does not rank), each test pair's score and whether it is derived (empty: no pair score)."""

    ranks: np.ndarray
    outside: np.ndarray
    pair_scores: np.ndarray
    positive: np.ndarray


def _judged(setup: TransformedTask, kept: np.ndarray, blocks: Callable[[], ScoreBlocks] | None,
            exact: ExactScores | None) -> _Judged:
    """A scorer's ranks of the `kept` query rows (from its score `blocks`) and scores of their test pairs (`exact`);
    either left empty where the scorer does not rank or score."""
    ranks, outside = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    if blocks is not None and len(kept):
        ranks, outside = _ranks(blocks(), setup.task.true_index[kept], len(setup.task.candidate_ids))
    if exact is None or not len(kept):
        return _Judged(ranks, outside, np.zeros(0), np.zeros(0, dtype=bool))
    in_kept = np.isin(setup.pair_rows, kept)
    new_rows, columns = np.searchsorted(kept, setup.pair_rows[in_kept]), setup.pair_columns[in_kept]
    return _Judged(ranks, outside, exact(new_rows, columns[:, None]).reshape(len(new_rows)),
                   setup.pair_positive[in_kept])


def _row(transform: str, scorer: str, judged: _Judged, n_candidates: int) -> dict:
    metrics = retrieval_metrics(judged.ranks, n_candidates)
    positive = judged.positive
    return {
        "case": f"{transform} / {scorer}",
        "transform": transform,
        "scorer": scorer,
        "pair_auc": pair_aucs(positive, {scorer: judged.pair_scores})[scorer] if len(positive) else None,
        "recall_at_1": metrics["recall_at_1"],
        "mrr": metrics["mrr"],
        "n_queries": int(len(judged.ranks)),
        "n_pairs": int(len(positive)),
        OUTSIDE_SHORTLIST: float(np.mean(judged.outside)) if len(judged.outside) else None,
    }


def _ranks(blocks: ScoreBlocks, true_index: np.ndarray, n_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's source rank among all candidates and whether it fell outside its shortlist (one pass over
    the blocks)."""
    ranks = np.zeros(len(true_index), dtype=np.int64)
    outside = np.zeros(len(true_index), dtype=bool)
    for block in blocks:
        rows, ranks[rows], outside[rows] = block_ranks(block, true_index, n_candidates)
    return ranks, outside


def altered_images(paths: Sequence[ImageFile], alteration: Alteration) -> Iterable[tuple[int, Image.Image]]:
    """(position, altered image) of each path that decodes; one that does not is logged and left out."""
    for position, path in enumerate(
        tqdm(paths, desc=f"transformed set: {alteration.name}", unit="image", disable=None)
    ):
        try:
            yield position, alteration.apply(load_rgb(path))
        except ImageRejected as exc:
            log.warning("transformed set: %s does not decode (%s): left out of %s", path, exc.reason, alteration.name)


def altered_inputs(
    paths: Sequence[ImageFile], alteration: Alteration, readers: AlteredReaders
) -> tuple[np.ndarray, ScorerInputs]:
    """The positions of the paths that were altered, and every scorer's reading of their altered images."""
    transform = pair_transform(readers.image_size)
    kept: list[int] = []
    batch: list[torch.Tensor] = []
    embeddings: list[torch.Tensor] = []
    descriptors: list[Descriptors] = []
    hashes: dict[str, list] = {name: [] for name in HASH_NAMES}
    greys: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            with torch.no_grad():
                embeddings.append(readers.model.embed(torch.stack(batch).to(readers.device)).float().cpu())
            batch.clear()

    readers.model.eval()
    for position, image in altered_images(paths, alteration):
        kept.append(position)
        batch.append(transform(image))
        signed = signature(image)
        for name in HASH_NAMES:
            hashes[name].append(getattr(signed, name))
        if readers.with_greys:
            greys.append(signed.grey)
        if readers.describe is not None:
            descriptors.append(readers.describe(image))
        if len(batch) >= readers.batch_size:
            flush()
    flush()
    inputs = ScorerInputs(
        embeddings=torch.cat(embeddings) if embeddings else torch.zeros((0, 0)),
        descriptors=DescriptorSet.stack(descriptors) if descriptors else None,
        hashes={name: np.array(values, dtype=np.uint64) for name, values in hashes.items()},
        greys=np.stack(greys) if greys else None,
    )
    return np.array(kept, dtype=np.int64), inputs


def pooled_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of every transform together (transform = OVERALL), by scorer."""
    return table[table["transform"] == OVERALL].set_index("scorer")


def transformed_headline(table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """transformed.<scorer>.<figure> of the pooled rows: fixed keys, NaN as None."""
    pooled = pooled_rows(table)
    return {
        scorer: {
            figure: (
                None
                if scorer not in pooled.index or pd.isna(pooled.at[scorer, figure])
                else float(pooled.at[scorer, figure])
            )
            for figure in TRANSFORMED_FIGURES
        }
        for scorer in SCORER_NAMES
    }
