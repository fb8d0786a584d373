"""Fine-tuning a ResNet-50 to classify the paintings' style or genre (stage finetune).

Trains for a fixed number of epochs (learning rate, clipping: training.follow_recipe), keeps
the last epoch's weights or, with `select_epoch: best_val`, those of the epoch that did best
on the validation split (the last without validation data), and reports top-1, top-5 and
macro-F1 on val and test. Runs alone or as one rank of a torchrun launch (training.py).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from artsim.core.distributed import gather_to_all
from artsim.finetune.data import LabelledImages, split_dataset, train_loader, usable_labelled_files
from artsim.finetune.labels import check_labels, classification_metrics, learnable_classes, majority_accuracy
from artsim.learn.batches import global_batch_size, global_mean
from artsim.learn.models import ARCH, NORMALISATION, build_classifier, drop_rejected
from artsim.learn.resume import EpochCheckpoint, ResumableEpochs
from artsim.learn.training import (
    BestEpoch,
    EpochLogger,
    Runtime,
    distribute,
    follow_recipe,
    make_deterministic,
    share_of,
    sum_over_ranks,
    unwrapped,
)
from artsim.params import FinetuneParams, result_params

log = logging.getLogger(__name__)

TOP_K = 5


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

@dataclass
class FinetuneResult:
    model: nn.Module
    classes: list[str]
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    test_predictions: pd.DataFrame  # actual, predicted (class names): the confusion matrix


def finetune_classifier(
    manifest: pd.DataFrame,
    images_dir: Path,
    params: FinetuneParams,
    seed: int,
    runtime: Runtime,
    initial_state: Mapping[str, Tensor] | None = None,
    on_epoch: EpochLogger | None = None,
    checkpoint: EpochCheckpoint | None = None,
) -> FinetuneResult:
    """Fine-tune a ResNet-50 to predict `params.label` from the ingested images, saving each
    epoch to `checkpoint` and resuming from it (artsim.learn.resume)."""
    make_deterministic(seed)
    check_labels(manifest, params)  # before decoding any image
    files, rejected, unlabelled = usable_labelled_files(manifest, Path(images_dir), params.label)
    classes = learnable_classes(files, params, unlabelled)  # undecodable images may have emptied a class
    splits = {split: split_dataset(files, split, params, classes) for split in ("train", "val", "test")}
    log.info("classes (%s): %s; images train/val/test = %d/%d/%d", params.label, classes,
             len(splits["train"]), len(splits["val"]), len(splits["test"]))

    model = build_classifier(len(classes), initial_state).to(runtime.device, memory_format=runtime.memory_format)
    best, history = _train_classifier(distribute(model, runtime), splits, params, seed, runtime, on_epoch,
                                      checkpoint)
    model.load_state_dict(best.state)

    val = _classify(model, splits["val"], params, runtime)
    test = _classify(model, splits["test"], params, runtime)
    metrics = {
        **best.figures,
        "best_epoch": best.epoch,
        **{f"val_{name}": value for name, value in val.metrics.items() if name != "loss"},
        **{f"test_{name}": value for name, value in test.metrics.items() if name != "loss"},
        "test_majority_accuracy": majority_accuracy(splits["train"].targets, test.targets),
        "n_classes": len(classes),
        **{f"n_{split}_images": len(dataset) for split, dataset in splits.items()},
        "skipped_images": rejected,
        "unlabelled_images": unlabelled,
    }
    test_predictions = pd.DataFrame({
        "actual": [classes[i] for i in test.targets],
        "predicted": [classes[i] for i in test.predictions],
    })
    return FinetuneResult(model.cpu(), classes, metrics, history, test_predictions)


def _train_classifier(
    model: nn.Module,
    splits: dict[str, LabelledImages],
    params: FinetuneParams,
    seed: int,
    runtime: Runtime,
    on_epoch: EpochLogger | None,
    checkpoint: EpochCheckpoint | None,
) -> tuple[BestEpoch, list[dict[str, float]]]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    scaler = runtime.grad_scaler()
    loader = train_loader(splits["train"], params, seed, runtime)
    # A global batch of one image takes no step (see _classifier_epoch).
    schedule = follow_recipe(optimizer, params.epochs * (len(loader) - (len(splits["train"]) % params.batch_size == 1)),
                             params.warmup, params.grad_clip)
    best, history = BestEpoch(), []
    epochs = ResumableEpochs(checkpoint, unwrapped(model), optimizer=optimizer, schedule=schedule, scaler=scaler)
    first = epochs.resume(best, history, on_epoch)
    for epoch in tqdm(range(first, params.epochs), desc="finetune", unit="epoch", initial=first, total=params.epochs,
                      disable=not runtime.ranks.is_main or None):
        loader.batch_sampler.set_epoch(epoch)
        figures = {"train_loss": _classifier_epoch(model, loader, optimizer, scaler, runtime)}
        val = _classify(unwrapped(model), splits["val"], params, runtime)
        key = None
        if val.metrics["accuracy"] is not None:
            figures["val_accuracy"] = val.metrics["accuracy"]
            # Tiny validation sets tie on accuracy often; the lower loss breaks the tie.
            key = (val.metrics["accuracy"], -val.metrics["loss"])
        history.append(figures)
        if on_epoch is not None:
            on_epoch(figures)
        best.offer(epoch, key if params.select_epoch == "best_val" else None, model, figures)
        epochs.epoch_done(best, history)
    return best, history


def _classifier_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler, runtime: Runtime) -> float:
    """One pass over the training images; the mean cross-entropy over all of them.

    Every rank takes every step (DDP meets in each backward): a global batch is skipped
    only when all ranks together hold fewer than two images, which BatchNorm cannot
    normalise (a single process skips it too); a rank with an empty share contributes
    zero gradient.
    """
    model.train()
    total, seen = 0.0, 0
    for images, targets in loader:
        count = len(targets)
        global_count = global_batch_size(count, runtime.ranks)
        if global_count < 2:
            continue
        with _running_statistics_if(model, count < 2), runtime.autocast():
            logits = model(runtime.to_device(images))
        summed = nn.functional.cross_entropy(logits.float(), targets.to(runtime.device), reduction="sum")
        optimizer.zero_grad()
        scaler.scale(global_mean(summed, global_count, runtime.ranks)).backward()
        scaler.step(optimizer)
        scaler.update()
        total += summed.item()
        seen += count
    total, seen = sum_over_ranks([total, seen], runtime.ranks)
    return total / seen if seen else float("nan")


@contextmanager
def _running_statistics_if(model: nn.Module, too_few: bool) -> Iterator[None]:
    """Normalise with BatchNorm's running statistics while `too_few` images are in this
    rank's share: batch statistics of one image are noise (and fail where a feature map
    is 1x1). Only per-rank BatchNorm: SyncBatchNorm pools the whole global batch, and its
    ranks must all join its collectives."""
    layers = [layer for layer in model.modules()
              if isinstance(layer, nn.modules.batchnorm._BatchNorm) and not isinstance(layer, nn.SyncBatchNorm)
              and layer.training] if too_few else []
    for layer in layers:
        layer.eval()
    try:
        yield
    finally:
        for layer in layers:
            layer.train()


@dataclass
class Classified:
    metrics: dict[str, float | None]
    targets: list[int]
    predictions: list[int]


@torch.no_grad()
def _classify(model: nn.Module, dataset: LabelledImages, params: FinetuneParams, runtime: Runtime) -> Classified:
    """Predict `dataset` (each rank its share, gathered on every rank)."""
    model.eval()
    share = Subset(dataset, list(share_of(len(dataset), runtime.ranks)))
    loader = DataLoader(
        share, batch_size=params.batch_size, num_workers=params.loader_workers, collate_fn=drop_rejected
    )
    rows: list[tuple[int, int, bool, float]] = []  # target, prediction, in top k, loss
    for batch in loader:
        if batch is None:
            continue
        with runtime.autocast():
            logits = model(runtime.to_device(batch[0])).float()
        targets = batch[1].to(runtime.device)
        losses = nn.functional.cross_entropy(logits, targets, reduction="none")
        top_k = logits.topk(min(TOP_K, logits.shape[1]), dim=1).indices
        in_top_k = (top_k == targets[:, None]).any(dim=1)
        rows.extend(zip(targets.tolist(), logits.argmax(dim=1).tolist(), in_top_k.tolist(), losses.tolist()))
    rows = [row for part in gather_to_all(rows, runtime.ranks) for row in part]
    targets, predictions, hits, losses = (list(column) for column in zip(*rows)) if rows else ([], [], [], [])
    n_classes = unwrapped(model).fc.out_features
    # Top-5 says something only when there are more than five classes to choose from.
    metrics = classification_metrics(targets, predictions, hits if n_classes > TOP_K else None)
    metrics["loss"] = float(np.mean(losses)) if losses else None
    return Classified(metrics, targets, predictions)


def finetune_card(result: FinetuneResult, params: FinetuneParams, seed: int) -> dict[str, Any]:
    """What a user of models/finetune/model.safetensors needs to know to use it."""
    return {
        "arch": ARCH,
        "label": params.label,
        "classes": result.classes,
        "image_size": params.image_size,
        "normalisation": NORMALISATION,
        "params": {"seed": seed, **result_params(params)},  # run-only keys decide nothing
        "metrics": result.metrics,
    }
