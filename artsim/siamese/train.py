"""Training the siamese regressor of the descriptor score (stage siamese).

The trunk is split at `train_layers`: the frozen bottom's features of each unique image
are computed once and cached on disk (artsim.learn.features), and training runs the trained
top and the head on them, in batches of pairs grouped by original (artsim.siamese.batches).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from artsim.learn.augment import TrainingViews, with_augmented_copies
from artsim.learn.batches import global_batch_size, global_mean
from artsim.learn.copy_detector import siamese_from_copy_detector
from artsim.learn.features import split_trunk
from artsim.learn.models import (
    ARCH,
    NORMALISATION,
    POOLED_DIM,
    SiameseRegressor,
    read_state_dict,
    siamese_from_classifier,
)
from artsim.learn.resume import EpochCheckpoint, ResumableEpochs
from artsim.learn.training import (
    BestEpoch,
    EpochLogger,
    Runtime,
    distribute,
    follow_recipe,
    freeze_batchnorm,
    make_deterministic,
    share_of,
    sum_over_ranks,
)
from artsim.params import SiameseParams, result_params
from artsim.siamese.batches import DecodedImages, GroupedPairBatches, PairBatches, PairTable, batch_loader, in_order
from artsim.siamese.inputs import prepare_inputs
from artsim.siamese.ranking import EmbeddingQueue
from artsim.siamese.scoring import LossTerms, PairScorer, batch_scores, scores_and_ranking

__all__ = ["PairScorer", "batch_scores", "regressor_epoch", "train_siamese", "calibrate_head", "siamese_card"]

log = logging.getLogger(__name__)

# Enough pairs to estimate the head's input statistics without a pass over a huge set.
CALIBRATION_PAIRS = 2048


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

@dataclass
class SiameseResult:
    model: SiameseRegressor
    train_mean_score: float
    metrics: dict[str, Any]
    history: list[dict[str, float]]


def train_siamese(
    pairs: pd.DataFrame,
    trunk_weights: Path,
    params: SiameseParams,
    seed: int,
    runtime: Runtime,
    on_epoch: EpochLogger | None = None,
    checkpoint: EpochCheckpoint | None = None,
) -> SiameseResult:
    """Regress the descriptor `score` of (original, generated) pairs with an MSE loss (and the
    ranking term, siamese.rank_weight, with siamese.rank_queue more negatives, and the spreading
    term, siamese.spread_weight), on the train pairs and siamese.augment_copies altered copies
    of each, their images altered per epoch with siamese.augment_prob (artsim.learn.augment).

    `pairs` is the output of `artsim.learn.pair_images.resolve_pairs`: it carries split, score
    and both image paths. Each epoch is saved to `checkpoint`, and a run resumes from it
    (artsim.learn.resume).
    """
    make_deterministic(seed)
    model = starting_siamese(trunk_weights, params)
    bottom, top = split_trunk(model.trunk, params.train_layers)
    pairs = pairs[pairs["split"].isin(["train", "val"])].reset_index(drop=True)
    pairs = with_augmented_copies(pairs, params.augment_copies, seed)
    inputs, rejected = prepare_inputs(PairTable.from_pairs(pairs).images, bottom, params, runtime)
    bad = pairs["original_path"].isin(rejected) | pairs["generated_path"].isin(rejected)
    skipped = int((bad & (pairs["augmented"] == 0)).sum())  # pairs, not their altered copies
    pairs = pairs[~bad].reset_index(drop=True)
    train_pairs, val_pairs = (pairs[pairs["split"] == split].reset_index(drop=True) for split in ("train", "val"))
    if train_pairs.empty:
        raise ValueError("no usable training pairs: nothing to train the siamese model on")
    train_mean = float(train_pairs["score"].mean())

    model.to(runtime.device, memory_format=runtime.memory_format)
    scorer = PairScorer(model, top if len(bottom) else None)
    views = TrainingViews(seed, params.augment_prob) if params.augment_prob > 0 else None
    train_set, val_set = inputs.batches(train_pairs, views), inputs.batches(val_pairs)
    calibrate_head(scorer, train_set, params.batch_size, train_mean, runtime)
    best, history = _train_regressor(scorer, train_set, val_set, params, seed, runtime, on_epoch, checkpoint)
    model.load_state_dict(best.state)

    val_scores = val_pairs["score"].to_numpy(dtype=np.float64)
    metrics = {
        **best.figures,
        "best_epoch": best.epoch,
        "val_baseline_mse": float(np.mean((val_scores - train_mean) ** 2)) if len(val_scores) else None,
        "train_mean_score": train_mean,
        "n_train_pairs": int((train_pairs["augmented"] == 0).sum()),
        "n_augmented_pairs": int((train_pairs["augmented"] > 0).sum()),  # altered copies (artsim.learn.augment)
        "n_val_pairs": len(val_pairs),
        "skipped_pairs": skipped,
    }
    # How the features were come by differs between machines with the same result: logged, not a metric.
    source = "decoded per batch (no frozen layer)" if isinstance(inputs.inputs, DecodedImages) else "cached"
    log.info("siamese: frozen-trunk features %s; %d damaged cached features computed again", source, inputs.healed)
    return SiameseResult(model.cpu().eval(), train_mean, metrics, history)


def starting_siamese(classifier_weights: Path, params: SiameseParams) -> SiameseRegressor:
    """The untrained model: the copy detector's trunk where siamese.trunk_weights_file names one,
    else the fine-tuned classifier's."""
    if params.trunk_weights_file is not None:
        return siamese_from_copy_detector(read_state_dict(params.trunk_weights_file), params.head_hidden,
                                          params.embedding_dim)
    return siamese_from_classifier(classifier_weights, params.head_hidden, params.embedding_dim)


@torch.no_grad()
def calibrate_head(scorer: PairScorer, pairs: PairBatches, batch_size: int, mean_score: float, runtime: Runtime,
                   max_pairs: int = CALIBRATION_PAIRS) -> None:
    """Set the head's standardisation of its features from the training pairs under the starting
    trunk (at most `max_pairs` evenly spread pairs), and start it at the mean baseline
    (artsim.learn.distance_head.DistanceHead.calibrate).

    The standardisation stays fixed during training, like the trunk's BatchNorm: batch
    statistics of a few pairs would be noise. Every rank computes the same figures.
    """
    scorer.eval()
    chosen = sorted(set(np.linspace(0, len(pairs) - 1, num=min(len(pairs), max_pairs)).round().astype(int).tolist()))
    firsts, seconds = [], []
    for batch in batch_loader(pairs, in_order(len(pairs), batch_size, chosen), 0, runtime):
        _, inputs, first, second, *_ = batch
        inputs = runtime.to_device(inputs) if inputs.dim() == 4 else inputs.to(runtime.device)
        with runtime.autocast():
            embeddings = scorer.embed(inputs).float()
        firsts.append(embeddings[first.to(runtime.device)])
        seconds.append(embeddings[second.to(runtime.device)])
    if not firsts or sum(len(f) for f in firsts) == 0:
        raise ValueError("no usable training pair to calibrate the siamese head on")
    scorer.model.head.calibrate(torch.cat(firsts), torch.cat(seconds), mean_score)


def _siamese_optimizer(scorer: PairScorer, params: SiameseParams) -> torch.optim.Optimizer:
    head = {id(p) for p in scorer.model.head.parameters()}
    trunk = [p for p in scorer.parameters() if p.requires_grad and id(p) not in head]
    groups = [{"params": scorer.model.head.parameters(), "lr": params.lr}]
    if trunk:
        groups.insert(0, {"params": trunk, "lr": params.lr * params.trunk_lr_scale})
    return torch.optim.AdamW(groups, weight_decay=params.weight_decay)


def _train_regressor(
    scorer: PairScorer,
    train_set: PairBatches,
    val_set: PairBatches,
    params: SiameseParams,
    seed: int,
    runtime: Runtime,
    on_epoch: EpochLogger | None,
    checkpoint: EpochCheckpoint | None,
) -> tuple[BestEpoch, list[dict[str, float]]]:
    optimizer = _siamese_optimizer(scorer, params)
    scaler = runtime.grad_scaler()
    ranks = runtime.ranks
    if params.rank_candidates and not params.rank_weight:
        log.warning(
            "siamese.rank_candidates %d is unused: siamese.rank_weight is 0 (no ranking term)", params.rank_candidates
        )
    ranked = params.rank_weight > 0 or params.spread_weight > 0
    sampler = GroupedPairBatches(train_set.table.groups, params.batch_size, seed, ranks.rank, ranks.world_size,
                                 with_candidates=ranked, extra_candidates=params.rank_candidates,
                                 altered=params.augment_prob > 0)
    terms = LossTerms(params.rank_weight, params.spread_weight, EmbeddingQueue(params.rank_queue))
    loader = batch_loader(train_set, sampler, params.loader_workers, runtime)
    schedule = follow_recipe(optimizer, params.epochs * len(sampler), params.warmup, params.grad_clip)
    trained = distribute(scorer, runtime)
    best, history = BestEpoch(), []
    epochs = ResumableEpochs(checkpoint, scorer.model, optimizer=optimizer, schedule=schedule, scaler=scaler,
                             queue=terms.queue)
    first = epochs.resume(best, history, on_epoch)
    for epoch in tqdm(range(first, params.epochs), desc="siamese", unit="epoch", initial=first, total=params.epochs,
                      disable=not ranks.is_main or None):
        sampler.set_epoch(epoch)
        figures = {"train_mse": regressor_epoch(trained, loader, optimizer, scaler, runtime, terms=terms)}
        val_mse = mean_squared_error(scorer, val_set, params.batch_size, runtime)
        key = None
        if val_mse is not None:
            figures["val_mse"] = val_mse
            key = (-val_mse,)
        history.append(figures)
        if on_epoch is not None:
            on_epoch(figures)
        best.offer(epoch, key if params.select_epoch == "best_val" else None, scorer.model, figures)
        epochs.epoch_done(best, history)
    return best, history


def regressor_epoch(scorer: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, runtime: Runtime, rank_weight: float = 0.0,
                    terms: LossTerms | None = None) -> float:
    """One pass over the training pairs; the mean squared error over all of them.

    The loss is the MSE plus the `terms` (or, given `rank_weight` > 0 alone, that times the
    in-batch ranking term; artsim.siamese.ranking), each a mean over the global batch."""
    terms = terms or LossTerms(rank_weight)
    scorer.train()
    freeze_batchnorm(scorer)
    total, seen = 0.0, 0
    for batch in loader:
        predictions, targets, ranking = scores_and_ranking(scorer, batch, runtime, rank=terms.any, queue=terms.queue)
        squared, count = nn.functional.mse_loss(predictions, targets, reduction="sum"), len(targets)
        # Shares of a batch may differ in size (by one pair; all of it when a share is
        # empty or its images became unreadable: that rank still runs backward, with zero
        # gradients), so the loss is the mean over the global batch.
        global_count = global_batch_size(count, runtime.ranks)
        loss = global_mean(squared, global_count, runtime.ranks)
        if ranking is not None:
            loss = loss + terms.loss(ranking, runtime.ranks)
            if terms.queue is not None:
                terms.queue.push(ranking.candidates, ranking.candidate_images)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        if global_count:
            scaler.step(optimizer)
            scaler.update()
        total += squared.item()
        seen += count
    total, seen = sum_over_ranks([total, seen], runtime.ranks)
    return total / seen if seen else float("nan")


@torch.no_grad()
def mean_squared_error(scorer: PairScorer, dataset: PairBatches, batch_size: int, runtime: Runtime) -> float | None:
    """MSE over `dataset` (each rank its share, summed over ranks)."""
    scorer.eval()
    squared, seen = 0.0, 0
    mine = list(share_of(len(dataset), runtime.ranks))
    for batch in batch_loader(dataset, in_order(len(dataset), batch_size, mine), 0, runtime):
        predictions, targets = batch_scores(scorer, batch, runtime)
        squared += ((predictions - targets) ** 2).sum().item()
        seen += len(targets)
    squared, seen = sum_over_ranks([squared, seen], runtime.ranks)
    return squared / seen if seen else None


def siamese_card(result: SiameseResult, params: SiameseParams, seed: int) -> dict[str, Any]:
    """What evaluate (or any user) needs to rebuild and feed models/siamese/model.safetensors."""
    return {
        "arch": (
            f"siamese {ARCH} trunk, GeM over the image and its mirror, projected and L2 normalised; "
            "DistanceHead: p + (1 - p) exp(-f(|a-b|)), "
            "p = MLP floor on [|a-b|, a*b], f(0) = 0"
        ),
        "image_size": params.image_size,
        "normalisation": NORMALISATION,
        "head_hidden": params.head_hidden,
        "embedding_dim": params.embedding_dim or POOLED_DIM,
        "train_mean_score": result.train_mean_score,
        "params": {"seed": seed, **result_params(params)},  # run-only keys decide nothing
        "metrics": result.metrics,
    }
