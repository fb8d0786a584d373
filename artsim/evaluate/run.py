"""The evaluation of the siamese model on the test split, beside the descriptor score and its peers.

Each scorer (the model, the descriptor score, pHash, dHash, SSIM) is judged on the very same
test pairs and the very same retrieval queries and candidates: an image that one of them
cannot read (or that has no descriptors, when the descriptor score ranks) is left out of all.
Each image is embedded once and its peer signature computed once; pairs and retrieval
combinations are scored from those.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from artsim.core.alterations import EVALUATION, Alteration
from artsim.core.metrics import pair_aucs, strength_spearmans
from artsim.evaluate.breakdowns import (
    DEFAULT_MRR,
    HEADLINE_SCORERS,
    best_search_ranking,
    error_by_strength,
    error_by_style,
    mrr_plain_and_transformed,
    scorer_headline,
    scorer_table,
)
from artsim.evaluate.calibration import calibrated, held_out_verdicts
from artsim.evaluate.calibration_pairs import ValPairs, calibration_variants, fitting_scores
from artsim.evaluate.embedding import score_embedding_pairs
from artsim.evaluate.held_out import held_out_pairs, held_out_scores
from artsim.evaluate.peers import PeerSignatures, peer_similarities_of_pairs
from artsim.evaluate.predictions import collection_table, prediction_table
from artsim.evaluate.readings import (
    DescribedCollection,
    describer,
    read_images,
    scorer_inputs,
    unreadable_scored,
    usable_ids,
)
from artsim.evaluate.regression import evaluation_report, mae_by_kind, train_mean_score
from artsim.evaluate.scorer_inputs import Shortlisting, score_blocks
from artsim.evaluate.source_retrieval import OUTSIDE_SHORTLIST, retrieval_report, retrieval_task, sampled_rows
from artsim.evaluate.transformed import (
    AlteredReaders,
    evaluate_transformed,
    pooled_rows,
    transformed_headline,
    transformed_task,
)
from artsim.evaluate.verdict import Thresholds, thresholds_at_precision
from artsim.index import DEFAULT_SHORTLIST
from artsim.index.query import Calibration
from artsim.learn.models import SiameseRegressor, default_device
from artsim.params import CLASSIC_SCORE_WEIGHTS

log = logging.getLogger(__name__)

# SSIM costs about 2 ms a pair on one core: ranking more (sampled query, shortlisted candidate)
# combinations than this (about a quarter of an hour) is skipped, its retrieval figures null.
SSIM_RETRIEVAL_MAX_PAIRS = 500_000
# The scorer table: the headline scorers, then the default-weighted descriptors (fixed rows whatever the weights).
DESCRIPTOR_ROWS = tuple(CLASSIC_SCORE_WEIGHTS)
SCORER_ORDER = (*HEADLINE_SCORERS, *DESCRIPTOR_ROWS)
NOT_MEASURED = thresholds_at_precision(np.zeros(0, dtype=bool), np.zeros(0))


@dataclass(frozen=True)
class Evaluation:
    """metrics/evaluate.json (`report`), and the tables behind the plots.

    predictions: PREDICTION_COLUMNS (predictions.csv) plus style and the two image paths (for the gallery).
    tables: file name under metrics/evaluate/ -> table (error by strength and style, every scorer's
    figures, the transformed set, each scorer's precision / recall curve).
    thresholds: each scorer's thresholds on the held-out test pairs (every variant against every original), fused's
    calibrated probability among them; shipped beside the model with `calibration` (fitted on val pairs only).
    search_default_by: shipped in models/verdict.json (default_by), where `artsim search` reads it.
    """

    report: dict[str, Any]
    predictions: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    thresholds: dict[str, Thresholds]
    search_default_by: str  # of model, phash, fused: the best MRR on held-out queries plain and transformed
    calibration: Calibration | None = None  # fused's; None where val has no derived and unrelated pair


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
    alterations: Mapping[str, Alteration] = EVALUATION,
    calibration_alterations: Mapping[str, Alteration] = EVALUATION,
    shortlist: int = DEFAULT_SHORTLIST,
    max_sampled_queries: int | None = None,
    calibration_max_queries: int | None = None,
    negatives_per_query: int | None = None,
    seed: int = 0,
) -> Evaluation:
    """Score every usable test pair, and rank every test variant's source among the collection.

    `pairs` is the output of `artsim.learn.pair_images.resolve_pairs` (all splits: the baseline is the
    train split's mean score). `originals` is the collection: the ingested manifest (id,
    split, style) with `path` resolved to the image file. Without `descriptor_scorer` the
    descriptor score does not rank (its retrieval figures are null). `alterations`: the held-out
    transformed set (every test variant under each); `calibration_alterations`: those of the val variants in fused's
    calibration (artsim.evaluate.calibration_pairs; the transformed set's settings, whichever test set is judged).
    `shortlist`: candidates per query of the costly scorers;
    `max_sampled_queries` (None: all): the queries SSIM and the transformed set use, drawn with `seed`;
    `calibration_max_queries` (None: all): the val variants fused's calibration is fitted on, drawn with `seed`.
    `negatives_per_query`: unrelated originals each held-out
    variant is judged against for the thresholds and the calibration (a sample drawn with `seed`; None: all).
    """
    baseline = train_mean_score(pairs)  # before any image is read: no train pairs is a setup error
    device = default_device()
    model.to(device).eval()
    test = pairs[pairs["split"] == "test"].reset_index(drop=True)
    collection = collection_table(originals)
    val = calibration_variants(pairs[pairs["split"] == "val"], calibration_max_queries, seed)
    readers, ssim_ranks = read_images(model, test, collection, image_size, batch_size, device, loader_workers,
                                       ssim_retrieval_max_pairs, min(shortlist, len(collection)), max_sampled_queries,
                                       list(val["generated_path"]))
    usable = readers.readable(test["original_path"]) & readers.readable(test["generated_path"])
    scored = test[usable].reset_index(drop=True)
    embeddings = readers.images.embeddings
    prediction = score_embedding_pairs(model, embeddings, embeddings, device, rows=(
        readers.images.rows(scored["original_path"]), readers.images.rows(scored["generated_path"])))
    predictions = prediction_table(scored, prediction, dict(zip(collection["id"], collection["style"])))
    task = retrieval_task(test, collection, usable_ids(test, collection, readers, descriptor_scorer))
    queries, candidates = (
        scorer_inputs(readers, paths, ids, descriptor_scorer, ssim_ranks)
        for paths, ids in ((task.query_paths, task.query_ids), (task.candidate_paths, task.candidate_ids))
    )
    weighting = descriptor_scorer.weighting if descriptor_scorer is not None else None
    originals_table = pd.DataFrame({"id": task.candidate_ids, "path": task.candidate_paths})
    sampled = sampled_rows(len(task.query_ids), max_sampled_queries, seed)
    altered = AlteredReaders(model, image_size, batch_size, device, describer(descriptor_scorer), with_greys=(
        _ssim_ranks_transformed(ssim_ranks, len(sampled) * min(shortlist, len(task.candidate_ids)),
                                len(alterations), ssim_retrieval_max_pairs)))
    val_pairs = held_out_pairs(val[readers.readable(val["generated_path"])], originals_table, negatives_per_query, seed)
    # fused's calibration on val pairs only, plain and altered; the thresholds of every scorer on test pairs only.
    verdicts = held_out_verdicts(
        fitting_scores(held_out_scores(model, readers.images, readers.signatures, val_pairs, device),
                       ValPairs(val_pairs, candidates, task.candidate_ids, altered), calibration_alterations),
        held_out_scores(model, readers.images, readers.signatures, device=device, with_ssim=ssim_ranks,
                        descriptors=descriptor_scorer.descriptors if descriptor_scorer else None, weighting=weighting,
                        pairs=held_out_pairs(test[test["generated_id"].isin(task.query_ids)], originals_table,
                                             negatives_per_query, seed)),
        seed)
    retrieval = retrieval_report(task, score_blocks(model, queries, candidates, weighting, device, with_fused=True,
                                                    shortlisting=Shortlisting(shortlist, sampled),
                                                    calibration=verdicts.calibration))
    pair_scores = _pair_scores(scored, prediction, readers.signatures, verdicts.calibration)
    table = _scorer_figures(scored, pair_scores, retrieval)
    transformed = evaluate_transformed(transformed_task(task, scored, sampled), candidates, altered, weighting,
                                       alterations, Shortlisting(shortlist), verdicts.calibration)
    default_mrr = mrr_plain_and_transformed(retrieval, pooled_rows(transformed))
    target, positive = predictions["target"].to_numpy(), predictions["positive"].to_numpy()
    report = {
        **evaluation_report(target, prediction, baseline),
        **mae_by_kind(target, prediction, positive),
        "n_skipped_pairs": int((~usable).sum()),
        "n_unreadable_images": unreadable_scored(readers, test, collection),
        "n_queries": len(task.query_ids),
        "n_candidates": len(task.candidate_ids),
        "n_candidates_test_only": len(task.test_columns),
        **_with_thresholds(scorer_headline(table), verdicts.thresholds),
        "transformed": transformed_headline(transformed),
        DEFAULT_MRR: default_mrr,
        "shortlist": shortlist,
        "n_sampled_queries": len(sampled),
        OUTSIDE_SHORTLIST: {name: figures["collection"][OUTSIDE_SHORTLIST] for name, figures in retrieval.items()},
        "calibration": verdicts.report,
    }
    tables = {
        "error_by_strength.csv": error_by_strength(predictions),
        "error_by_style.csv": error_by_style(predictions),
        "scorers.csv": table,
        "transformed.csv": transformed,
        **verdicts.tables,
    }
    return Evaluation(report, predictions, tables, verdicts.thresholds, best_search_ranking(default_mrr),
                      verdicts.calibration)


def _ssim_ranks_transformed(ssim_ranks: bool, per_alteration: int, n_alterations: int, max_pairs: int) -> bool:
    """SSIM takes part in the transformed set within the same budget of combinations as plain retrieval."""
    combinations = per_alteration * n_alterations
    if ssim_ranks and combinations > max_pairs:
        log.warning("SSIM skipped on the transformed set: %d combinations exceed %d", combinations, max_pairs)
    return ssim_ranks and combinations <= max_pairs


def _with_thresholds(
    headline: dict[str, dict[str, Any]], thresholds: Mapping[str, Thresholds]
) -> dict[str, dict[str, Any]]:
    # A scorer without held-out scores (fused uncalibrated, the descriptor score undescribed): the same keys, null.
    return {name: {**figures, **thresholds.get(name, NOT_MEASURED).report()} for name, figures in headline.items()}


def _pair_scores(scored: pd.DataFrame, prediction: np.ndarray, signatures: PeerSignatures,
                 calibration: Calibration | None) -> dict[str, np.ndarray]:
    """Every scorer's score of each scored pair (and the default weights' descriptors; fused's calibrated probability
    where a calibration was fitted)."""
    scores = {
        "model": prediction,
        "descriptor": scored["score"].to_numpy(dtype=np.float64),
        **peer_similarities_of_pairs(signatures, list(scored["original_path"]), list(scored["generated_path"])),
        **{name: scored[name].to_numpy(dtype=np.float64) for name in DESCRIPTOR_ROWS},
    }
    return scores | ({"fused": calibrated(calibration, scores)} if calibration is not None else {})


def _scorer_figures(
    scored: pd.DataFrame, pair_scores: Mapping[str, np.ndarray], retrieval: Mapping[str, Any]
) -> pd.DataFrame:
    """Pair AUC and Spearman with strength of every scorer on the scored pairs, beside its retrieval figures."""
    positive, strength = scored["positive"].to_numpy(dtype=bool), scored["strength"].to_numpy(dtype=np.float64)
    return scorer_table(pair_aucs(positive, pair_scores), strength_spearmans(positive, strength, pair_scores),
                        retrieval, SCORER_ORDER)
