"""The evaluation of the siamese model on the test split, beside the descriptor score and its peers.

Each scorer (the model, the descriptor score, pHash, dHash, SSIM) is judged on the very same
test pairs and the very same retrieval queries and candidates: an image that one of them
cannot read (or that has no descriptors, when the descriptor score ranks) is left out of all.
Each image is embedded once and its peer signature computed once; pairs and retrieval
combinations are scored from those.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from artsim.core.metrics import pair_aucs, strength_spearmans
from artsim.params import CLASSIC_SCORE_WEIGHTS, ScoreWeights
from artsim.describe.table import Descriptors
from artsim.evaluate.breakdowns import (
    HEADLINE_SCORERS,
    error_by_strength,
    error_by_style,
    scorer_headline,
    scorer_table,
)
from artsim.evaluate.embedding import EmbeddedImages, embed_files, model_score_blocks, score_embedding_pairs
from artsim.evaluate.regression import evaluation_report, mae_by_kind, train_mean_score
from artsim.evaluate.source_retrieval import RetrievalTask, ScoreBlocks, retrieval_report, retrieval_task
from artsim.learn.models import SiameseRegressor, default_device
from artsim.evaluate.peers import HASH_NAMES, PeerSignatures, hash_score_blocks, pair_similarities, signatures_of, ssim_score_blocks
from artsim.score.similarity import DescriptorSet, TextureStats, cross_score_blocks

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ["pair_id", "target", "prediction", "positive", "strength"]
UNKNOWN_STYLE = "unknown"
# SSIM costs about 2 ms a pair on one core and has no index: ranking more (query, candidate)
# combinations than this (about a quarter of an hour) is skipped, its retrieval figures null.
SSIM_RETRIEVAL_MAX_PAIRS = 500_000
# The scorer table: the headline scorers, then the default-weighted descriptors (fixed rows whatever the weights).
DESCRIPTOR_ROWS = tuple(CLASSIC_SCORE_WEIGHTS)
SCORER_ORDER = (*HEADLINE_SCORERS, *DESCRIPTOR_ROWS)


@dataclass(frozen=True)
class DescribedCollection:
    """Every image's descriptors with the texture stats and weights: the descriptor score of any
    pair of them (the retrieval baseline). artsim.score.scorer.DescriptorScorer scores new images."""

    descriptors: Mapping[str, Descriptors]
    stats: TextureStats
    weights: ScoreWeights


@dataclass(frozen=True)
class Evaluation:
    """metrics/evaluate.json (`report`), and the tables behind the plots.

    predictions: PREDICTION_COLUMNS (predictions.csv) plus style and the two image paths (for the gallery).
    tables: file name under metrics/evaluate/ -> table (error by strength and style, every scorer's figures).
    """

    report: dict[str, Any]
    predictions: pd.DataFrame
    tables: dict[str, pd.DataFrame]


@dataclass(frozen=True)
class _Readers:
    """What every scorer read of each image: the model's embeddings and the peers' signatures."""

    images: EmbeddedImages
    signatures: PeerSignatures

    def readable(self, paths: pd.Series | list[Path]) -> np.ndarray:
        return self.images.readable(paths) & self.signatures.readable(paths)

    @property
    def unreadable(self) -> frozenset[Path]:
        return self.images.unreadable | self.signatures.unreadable


def evaluate_on_test(
    model: SiameseRegressor,
    pairs: pd.DataFrame,
    originals: pd.DataFrame,
    image_size: int,
    batch_size: int,
    *,
    descriptor_scorer: DescribedCollection | None = None,
    loader_workers: int = 0,
    ssim_retrieval_max_pairs: int = SSIM_RETRIEVAL_MAX_PAIRS,
) -> Evaluation:
    """Score every usable test pair, and rank every test variant's source among the collection.

    `pairs` is the output of `artsim.learn.pair_images.resolve_pairs` (all splits: the baseline is the
    train split's mean score). `originals` is the collection: the ingested manifest (id,
    split, style) with `path` resolved to the image file. Without `descriptor_scorer` the
    descriptor score does not rank (its retrieval figures are null).
    """
    baseline = train_mean_score(pairs)  # before any image is read: no train pairs is a setup error
    device = default_device()
    model.to(device).eval()
    test = pairs[pairs["split"] == "test"].reset_index(drop=True)
    collection = _collection(originals)
    readers, ssim_ranks = _read_images(model, test, collection, image_size, batch_size, device, loader_workers,
                                       ssim_retrieval_max_pairs)
    usable = readers.readable(test["original_path"]) & readers.readable(test["generated_path"])
    scored = test[usable].reset_index(drop=True)
    prediction = score_embedding_pairs(model, readers.images.embeddings[readers.images.rows(scored["original_path"])],
                                       readers.images.embeddings[readers.images.rows(scored["generated_path"])], device)
    predictions = prediction_table(scored, prediction, dict(zip(collection["id"], collection["style"])))
    task = retrieval_task(test, collection, usable_ids(test, collection, readers, descriptor_scorer))
    retrieval = retrieval_report(task, _rankers(model, task, readers, descriptor_scorer, device, ssim_ranks))
    table = _scorer_figures(scored, prediction, readers.signatures, retrieval)
    target, positive = predictions["target"].to_numpy(), predictions["positive"].to_numpy()
    report = {
        **evaluation_report(target, prediction, baseline),
        **mae_by_kind(target, prediction, positive),
        "n_skipped_pairs": int((~usable).sum()),
        "n_unreadable_images": len(readers.unreadable),
        "n_queries": len(task.query_ids),
        "n_candidates": len(task.candidate_ids),
        "n_candidates_test_only": len(task.test_columns),
        **scorer_headline(table),
    }
    tables = {
        "error_by_strength.csv": error_by_strength(predictions),
        "error_by_style.csv": error_by_style(predictions),
        "scorers.csv": table,
    }
    return Evaluation(report, predictions, tables)


def _collection(originals: pd.DataFrame) -> pd.DataFrame:
    style = originals["style"] if "style" in originals else pd.Series(None, index=originals.index, dtype=object)
    return pd.DataFrame({
        "id": originals["id"].astype(str).to_numpy(),
        "path": list(originals["path"]),
        "split": originals["split"].astype(str).to_numpy(),
        "style": [_style(value) for value in style],
    })


def _read_images(
    model: SiameseRegressor, test: pd.DataFrame, collection: pd.DataFrame, image_size: int, batch_size: int,
    device: torch.device, loader_workers: int, ssim_retrieval_max_pairs: int,
) -> tuple[_Readers, bool]:
    """Every test pair image and every candidate, embedded once and signed once; and whether SSIM ranks."""
    pair_paths = [*test["original_path"], *test["generated_path"]]
    paths = [*pair_paths, *collection["path"]]
    images = embed_files(model, paths, image_size, batch_size, device, loader_workers)
    queries = test.loc[test["positive"].astype(bool), "generated_id"].nunique()
    ssim_ranks = queries * len(collection) <= ssim_retrieval_max_pairs
    if not ssim_ranks:
        log.warning("SSIM retrieval skipped: %d queries x %d candidates exceed %d combinations",
                    queries, len(collection), ssim_retrieval_max_pairs)
    # Grey thumbnails (16 KB an image) only where SSIM is computed.
    signatures = signatures_of(paths, grey_for=None if ssim_ranks else pair_paths)
    return _Readers(images, signatures), ssim_ranks


def usable_ids(test_pairs: pd.DataFrame, collection: pd.DataFrame, readers: _Readers,
               descriptor_scorer: DescribedCollection | None) -> set[str]:
    """Ids of the images every scorer read and, when the descriptor score ranks, that are described:
    every ranking then runs on the very same queries and candidates."""
    ids = pd.concat([test_pairs["original_id"], test_pairs["generated_id"], collection["id"]], ignore_index=True).astype(str)
    paths = [*test_pairs["original_path"], *test_pairs["generated_path"], *collection["path"]]
    described = ids.isin(list(descriptor_scorer.descriptors)).to_numpy() if descriptor_scorer is not None else True
    return set(ids[readers.readable(paths) & described])


def _rankers(
    model: SiameseRegressor, task: RetrievalTask, readers: _Readers, descriptor_scorer: DescribedCollection | None,
    device: torch.device, ssim_ranks: bool,
) -> dict[str, Callable[[], ScoreBlocks] | None]:
    """Each scorer's (queries x candidates) score blocks of `task`, or None where it does not rank."""
    images, signatures = readers.images, readers.signatures

    def model_blocks() -> ScoreBlocks:
        embeddings = images.embeddings
        return model_score_blocks(model, embeddings[images.rows(task.query_paths)],
                                  embeddings[images.rows(task.candidate_paths)], device)

    def descriptor_blocks() -> ScoreBlocks:
        stacked = [DescriptorSet.stack([descriptor_scorer.descriptors[i] for i in ids]) for ids in (task.query_ids, task.candidate_ids)]
        return cross_score_blocks(*stacked, descriptor_scorer.stats, descriptor_scorer.weights)

    def hash_blocks(name: str) -> Callable[[], ScoreBlocks]:
        hashes = signatures.hashes(name)
        return lambda: hash_score_blocks(hashes[signatures.rows(task.query_paths)], hashes[signatures.rows(task.candidate_paths)])

    def ssim_blocks() -> ScoreBlocks:
        return ssim_score_blocks(signatures.greys(task.query_paths), signatures.greys(task.candidate_paths))

    return {
        "model": model_blocks,
        "descriptor": descriptor_blocks if descriptor_scorer is not None else None,
        **{name: hash_blocks(name) for name in HASH_NAMES},
        "ssim": ssim_blocks if ssim_ranks else None,
    }


def _scorer_figures(scored: pd.DataFrame, prediction: np.ndarray, signatures: PeerSignatures,
                    retrieval: Mapping[str, Any]) -> pd.DataFrame:
    """Pair AUC and Spearman with strength of every scorer on the scored pairs, beside its retrieval figures."""
    pair_scores = {
        "model": prediction,
        "descriptor": scored["score"].to_numpy(dtype=np.float64),
        **pair_similarities(signatures, list(scored["original_path"]), list(scored["generated_path"])),
        **{name: scored[name].to_numpy(dtype=np.float64) for name in DESCRIPTOR_ROWS},
    }
    positive, strength = scored["positive"].to_numpy(dtype=bool), scored["strength"].to_numpy(dtype=np.float64)
    return scorer_table(pair_aucs(positive, pair_scores), strength_spearmans(positive, strength, pair_scores),
                        retrieval, SCORER_ORDER)


def prediction_table(scored: pd.DataFrame, prediction: np.ndarray, styles: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({
        "pair_id": scored["pair_id"].to_numpy(),
        "target": scored["score"].to_numpy(dtype=np.float64),
        "prediction": prediction,
        "positive": scored["positive"].to_numpy(dtype=bool),
        "strength": scored["strength"].to_numpy(dtype=np.float64),
        "style": [styles.get(str(o), UNKNOWN_STYLE) for o in scored["original_id"]],
        "original_path": scored["original_path"].to_numpy(),
        "generated_path": scored["generated_path"].to_numpy(),
    })


def _style(value: object) -> str:
    # A manifest may hold None, NaN or "" for an unlabelled painting: one bucket for all of them.
    return UNKNOWN_STYLE if value is None or pd.isna(value) or value == "" else str(value)
