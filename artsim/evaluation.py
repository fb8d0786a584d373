"""How well the siamese model does on the test split.

Three views, all in metrics/evaluate.json:
- regression: its errors against the descriptor score, next to the train-mean baseline,
  overall and by strength and by style;
- pair discrimination: ROC AUC of positives vs negatives, for the model and each descriptor;
- source retrieval: for each test variant, where its true original ranks among all test
  originals, by the model's score and by the descriptor score (the baseline).

Each test image goes through the trunk once; pairs are then scored from the embeddings
(the head only), which is what makes scoring every (variant, original) combination cheap.

The metric functions are pure (arrays in, dict out). A metric that is undefined for
the data (a correlation of a constant, R² of a constant target, anything on no data)
is None, so that it is written as JSON null instead of NaN.
"""
from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score
from torch import Tensor
from tqdm import tqdm

from artsim.config import ScoreWeights
from artsim.descriptors import DESCRIPTOR_NAMES, Descriptors
from artsim.features import embed_images
from artsim.models import SiameseRegressor, default_device
from artsim.retrieval import ranks_from_blocks, retrieval_metrics
from artsim.scoring import DescriptorSet, TextureStats, cross_score_blocks

log = logging.getLogger(__name__)

Metrics = dict[str, float | int | None]


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _correlation(fn, target: np.ndarray, prediction: np.ndarray) -> float | None:
    if len(target) < 2 or np.ptp(target) == 0 or np.ptp(prediction) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return _finite_or_none(fn(target, prediction).statistic)


def regression_metrics(target: np.ndarray, prediction: np.ndarray) -> Metrics:
    """mse, mae, rmse, r2, pearson, spearman of `prediction` against `target`."""
    target = np.asarray(target, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    if target.shape != prediction.shape:
        raise ValueError(f"target and prediction differ in shape: {target.shape} vs {prediction.shape}")
    if target.size == 0:
        return dict.fromkeys(("mse", "mae", "rmse", "r2", "pearson", "spearman"))
    error = prediction - target
    mse = float(np.mean(error**2))
    spread = float(np.sum((target - target.mean()) ** 2))
    return {
        "mse": mse,
        "mae": float(np.mean(np.abs(error))),
        "rmse": math.sqrt(mse),
        # R² compares with predicting the target's own mean; undefined when the target is constant.
        "r2": 1.0 - float(np.sum(error**2)) / spread if spread > 0 else None,
        "pearson": _correlation(stats.pearsonr, target, prediction),
        "spearman": _correlation(stats.spearmanr, target, prediction),
    }


def baseline_metrics(target: np.ndarray, baseline: float) -> Metrics:
    """The errors of predicting `baseline` (the train-split mean score) for every pair."""
    target = np.asarray(target, dtype=np.float64)
    if target.size == 0:
        return {"baseline_mse": None, "baseline_mae": None}
    return {
        "baseline_mse": float(np.mean((target - baseline) ** 2)),
        "baseline_mae": float(np.mean(np.abs(target - baseline))),
    }


def evaluation_report(target: np.ndarray, prediction: np.ndarray, baseline: float) -> Metrics:
    """The regression part of metrics/evaluate.json."""
    return {
        **regression_metrics(target, prediction),
        **baseline_metrics(target, baseline),
        "n_test_pairs": int(np.asarray(target).size),
    }


def train_mean_score(pairs: pd.DataFrame) -> float:
    train_scores = pairs.loc[pairs["split"] == "train", "score"]
    if train_scores.empty:
        raise ValueError("no train pairs: the mean-score baseline is undefined")
    return float(train_scores.mean())


def pair_aucs(positive: np.ndarray, scores: Mapping[str, np.ndarray]) -> dict[str, float | None]:
    """ROC AUC of each score as a detector of 'this variant derives from this original'; None with one class."""
    positive = np.asarray(positive, dtype=bool)
    if len(np.unique(positive)) < 2:
        return dict.fromkeys(scores)
    return {name: _finite_or_none(roc_auc_score(positive, values)) for name, values in scores.items()}


def error_by(predictions: pd.DataFrame, column: str) -> pd.DataFrame:
    """(column, mae, n) per value of `column`, sorted by it."""
    absolute_error = (predictions["prediction"] - predictions["target"]).abs()
    return absolute_error.groupby(predictions[column].rename(column), sort=True).agg(mae="mean", n="size").reset_index()


def _as_metric_dict(table: pd.DataFrame, column: str, key=str) -> dict[str, dict[str, float | int]]:
    return {key(value): {"mae": float(mae), "n": int(n)} for value, mae, n in zip(table[column], table["mae"], table["n"])}


# ---------------------------------------------------------------------------
# Embed once, score from embeddings
# ---------------------------------------------------------------------------

# Pairs per call of the head: bounds memory (each pair is a 4096-float feature) whatever the test size.
PAIRS_PER_CALL = 8192


@dataclass(frozen=True)
class EmbeddedImages:
    """Trunk embeddings of distinct image files, and the files that did not decode."""

    embeddings: Tensor
    row_of: dict[Path, int]
    unreadable: frozenset[Path]

    def rows(self, paths: Iterable[Path | str]) -> Tensor:
        return torch.as_tensor([self.row_of[Path(p)] for p in paths], dtype=torch.long)

    def readable(self, paths: Iterable[Path | str]) -> np.ndarray:
        return np.array([Path(p) not in self.unreadable for p in paths], dtype=bool)


def embed_files(
    model: SiameseRegressor, paths: Iterable[Path | str], image_size: int, batch_size: int, device: torch.device, loader_workers: int = 0
) -> EmbeddedImages:
    """Each distinct file through the trunk once; a file that does not decode is listed, never fatal."""
    distinct = list(dict.fromkeys(Path(p) for p in paths))
    embeddings, failed = embed_images(model.trunk, distinct, image_size, batch_size, device, loader_workers,
                                      desc="embed test images")
    for position, reason in failed.items():
        log.warning("test image %s does not decode (%s): its pairs are skipped", distinct[position], reason)
    return EmbeddedImages(embeddings, {p: i for i, p in enumerate(distinct)}, frozenset(distinct[i] for i in failed))


@torch.no_grad()
def score_embedding_pairs(
    model: SiameseRegressor, left: Tensor, right: Tensor, device: torch.device, pairs_per_call: int = PAIRS_PER_CALL
) -> np.ndarray:
    """f(left[i], right[i]) for every i, from trunk embeddings."""
    model.eval()
    scores = [
        model.score_embeddings(left[start:start + pairs_per_call].to(device), right[start:start + pairs_per_call].to(device)).float().cpu()
        for start in range(0, len(left), pairs_per_call)
    ]
    return torch.cat(scores).numpy().astype(np.float64) if scores else np.zeros(0)


@torch.no_grad()
def model_score_blocks(
    model: SiameseRegressor, queries: Tensor, candidates: Tensor, device: torch.device, pairs_per_call: int = PAIRS_PER_CALL
) -> Iterator[tuple[int, np.ndarray]]:
    """f(query, candidate) for every combination, as (first row, (rows, len(candidates)) block) pieces.

    Pairs are gathered from the embeddings per call, so at most `pairs_per_call` pair
    features exist at any time, never a queries x candidates x 4096 tensor.
    """
    model.eval()
    queries, candidates = queries.to(device), candidates.to(device)
    n_candidates = len(candidates)
    rows = max(1, pairs_per_call // max(1, n_candidates))
    for start in tqdm(range(0, len(queries), rows), desc="model scores", unit="block", disable=None):
        block = queries[start:start + rows]
        flat = torch.arange(len(block) * n_candidates, device=device)
        scores = torch.cat([
            model.score_embeddings(block[chunk // n_candidates], candidates[chunk % n_candidates]).float()
            for chunk in flat.split(pairs_per_call)
        ])
        yield start, scores.view(len(block), n_candidates).cpu().numpy()


# ---------------------------------------------------------------------------
# Source retrieval
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DescriptorScorer:
    """What the descriptor score of any two images needs: the retrieval baseline."""

    descriptors: Mapping[str, Descriptors]
    stats: TextureStats
    weights: ScoreWeights


@dataclass(frozen=True)
class RetrievalTask:
    """Queries (test variants) and candidates (test originals), and each query's true source."""

    query_ids: list[str]
    query_paths: list[Path]
    candidate_ids: list[str]
    candidate_paths: list[Path]
    true_index: np.ndarray


def retrieval_task(test_pairs: pd.DataFrame, usable: set[str]) -> RetrievalTask:
    """Every variant of a positive test pair against every original of the test pairs, sorted by id.

    Only images whose id is in `usable` (decoded, and described when the baseline needs it)
    take part; a variant whose original is left out has no true source to find and is left out too.
    """
    originals = test_pairs.drop_duplicates("original_id").sort_values("original_id")
    originals = originals[originals["original_id"].isin(usable)]
    index_of = {image_id: i for i, image_id in enumerate(originals["original_id"])}
    variants = test_pairs[test_pairs["positive"].astype(bool)].drop_duplicates("generated_id").sort_values("generated_id")
    variants = variants[variants["generated_id"].isin(usable) & variants["original_id"].isin(index_of)]
    return RetrievalTask(
        query_ids=variants["generated_id"].tolist(),
        query_paths=[Path(p) for p in variants["generated_path"]],
        candidate_ids=originals["original_id"].tolist(),
        candidate_paths=[Path(p) for p in originals["original_path"]],
        true_index=np.array([index_of[o] for o in variants["original_id"]], dtype=np.int64),
    )


def retrieval_report(
    model: SiameseRegressor,
    task: RetrievalTask,
    images: EmbeddedImages,
    device: torch.device,
    descriptor_scorer: DescriptorScorer | None,
) -> dict[str, dict[str, Any]]:
    """recall@1, recall@5, MRR of the true source, by the model's score and by the descriptor score."""
    n_candidates = len(task.candidate_ids)
    if not task.query_ids:
        empty = retrieval_metrics(np.zeros(0), n_candidates)
        return {"model": empty, "descriptor": dict(empty)}
    model_blocks = model_score_blocks(model, images.embeddings[images.rows(task.query_paths)],
                                      images.embeddings[images.rows(task.candidate_paths)], device)
    report = {"model": retrieval_metrics(ranks_from_blocks(model_blocks, task.true_index), n_candidates)}
    if descriptor_scorer is None:
        report["descriptor"] = dict.fromkeys(report["model"])
        return report
    stacked = [DescriptorSet.stack([descriptor_scorer.descriptors[i] for i in ids]) for ids in (task.query_ids, task.candidate_ids)]
    descriptor_blocks = cross_score_blocks(*stacked, descriptor_scorer.stats, descriptor_scorer.weights)
    report["descriptor"] = retrieval_metrics(ranks_from_blocks(descriptor_blocks, task.true_index), n_candidates)
    return report


# ---------------------------------------------------------------------------
# The whole evaluation
# ---------------------------------------------------------------------------

PREDICTION_COLUMNS = ["pair_id", "target", "prediction", "positive", "strength"]
UNKNOWN_STYLE = "unknown"


@dataclass(frozen=True)
class Evaluation:
    """metrics/evaluate.json, and the tables behind the plots.

    predictions: PREDICTION_COLUMNS (predictions.csv) plus style and the two image paths (for the gallery).
    """

    report: dict[str, Any]
    predictions: pd.DataFrame
    error_by_strength: pd.DataFrame


def evaluate_on_test(
    model: SiameseRegressor,
    pairs: pd.DataFrame,
    image_size: int,
    batch_size: int,
    *,
    descriptor_scorer: DescriptorScorer | None = None,
    styles: Mapping[str, str] | None = None,
    loader_workers: int = 0,
) -> Evaluation:
    """Score every usable test pair and every (test variant, test original) combination.

    `pairs` is the output of `artsim.models.resolve_pairs` (all splits: the baseline is the
    train split's mean score). `styles` maps original ids to their style (for mae_by_style).
    Without `descriptor_scorer` the descriptor retrieval baseline is null.
    """
    baseline = train_mean_score(pairs)  # before any image is read: no train pairs is a setup error
    device = default_device()
    model.to(device).eval()
    test = pairs[pairs["split"] == "test"].reset_index(drop=True)
    images = embed_files(model, [*test["original_path"], *test["generated_path"]], image_size, batch_size, device, loader_workers)
    usable = images.readable(test["original_path"]) & images.readable(test["generated_path"])
    scored = test[usable].reset_index(drop=True)
    prediction = score_embedding_pairs(model, images.embeddings[images.rows(scored["original_path"])],
                                       images.embeddings[images.rows(scored["generated_path"])], device)
    predictions = prediction_table(scored, prediction, styles or {})
    report = {
        **evaluation_report(predictions["target"].to_numpy(), prediction, baseline),
        "n_skipped_pairs": int((~usable).sum()),
        "n_unreadable_images": len(images.unreadable),
        **breakdowns(predictions),
        "pair_auc": pair_aucs(predictions["positive"].to_numpy(), {
            "model": prediction, **{name: scored[name].to_numpy(dtype=np.float64) for name in (*DESCRIPTOR_NAMES, "score")},
        }),
        "retrieval": retrieval_report(model, retrieval_task(test, usable_ids(test, images, descriptor_scorer)),
                                      images, device, descriptor_scorer),
    }
    return Evaluation(report, predictions, error_by(predictions, "strength"))


def usable_ids(test_pairs: pd.DataFrame, images: EmbeddedImages, descriptor_scorer: DescriptorScorer | None) -> set[str]:
    """Ids of the test images that decoded and, when the descriptor baseline is asked for, are described:
    both rankings then run on the very same queries and candidates."""
    ids = pd.concat([test_pairs["original_id"], test_pairs["generated_id"]], ignore_index=True)
    paths = pd.concat([test_pairs["original_path"], test_pairs["generated_path"]], ignore_index=True)
    readable = images.readable(paths)
    described = ids.isin(list(descriptor_scorer.descriptors)) if descriptor_scorer is not None else True
    return set(ids[readable & described])


def prediction_table(scored: pd.DataFrame, prediction: np.ndarray, styles: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({
        "pair_id": scored["pair_id"].to_numpy(),
        "target": scored["score"].to_numpy(dtype=np.float64),
        "prediction": prediction,
        "positive": scored["positive"].to_numpy(dtype=bool),
        "strength": scored["strength"].to_numpy(dtype=np.float64),
        "style": [_style(styles.get(str(o))) for o in scored["original_id"]],
        "original_path": scored["original_path"].to_numpy(),
        "generated_path": scored["generated_path"].to_numpy(),
    })


def _style(value: object) -> str:
    # A manifest may hold None, NaN or "" for an unlabelled painting: one bucket for all of them.
    return UNKNOWN_STYLE if value is None or pd.isna(value) or value == "" else str(value)


def breakdowns(predictions: pd.DataFrame) -> dict[str, dict[str, dict[str, float | int]]]:
    """MAE and pair count per strength (keys as '0.25') and per style of the original."""
    return {
        "mae_by_strength": _as_metric_dict(error_by(predictions, "strength"), "strength", key=lambda s: f"{s:g}"),
        "mae_by_style": _as_metric_dict(error_by(predictions, "style"), "style"),
    }
