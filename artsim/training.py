"""Training the style/genre classifier and the siamese similarity regressor.

Both loops train for a fixed number of epochs, keep the weights of the epoch that did
best on the validation split (the last epoch when there is no validation data), and
report per-epoch figures through an `on_epoch` callback (dvclive in the stages).
"""
from __future__ import annotations

import copy
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from artsim.config import FinetuneParams, SiameseParams
from artsim.images import ImageRejected, load_rgb
from artsim.models import (
    ARCH,
    EMBEDDING_DIM,
    NORMALISATION,
    PairImages,
    SiameseRegressor,
    build_classifier,
    classifier_eval_transform,
    classifier_train_transform,
    default_device,
    drop_rejected,
    screen_images,
    siamese_from_classifier,
    usable_pairs,
)

log = logging.getLogger(__name__)

OTHER = "other"
# The trunk arrives trained; the freshly initialised head needs to move much further.
TRUNK_LR_SCALE = 0.1
# Enough pairs to estimate the head's input statistics without a pass over a huge set.
CALIBRATION_PAIRS = 2048

EpochLogger = Callable[[dict[str, float]], None]


def make_deterministic(seed: int) -> None:
    """Seed every RNG training touches and forbid non-deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # CUDA has kernels without deterministic versions; there, warn instead of failing.
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())


def dvclive_epoch_logger(live: Any) -> EpochLogger:
    """Log each epoch's figures to a dvclive `Live` as one step."""
    def log_epoch(metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            live.log_metric(name, value)
        live.next_step()
    return log_epoch


# ---------------------------------------------------------------------------
# Classes
# ---------------------------------------------------------------------------

def class_names(train_labels: Iterable[str], min_class_size: int, eval_labels: Iterable[str] = ()) -> list[str]:
    """Labels with at least `min_class_size` train images, sorted, then OTHER when needed.

    OTHER (always last) collects the labels too rare in train to be learnt and those
    seen only in `eval_labels` (val/test), so that every image has a class.
    """
    counts = Counter(train_labels)
    kept = sorted(label for label, n in counts.items() if n >= min_class_size and label != OTHER)
    needs_other = any(label not in kept for label in (*counts, *eval_labels))
    return [*kept, OTHER] if needs_other else kept


def class_indices(labels: Iterable[str], classes: Sequence[str]) -> list[int]:
    position = {name: i for i, name in enumerate(classes)}
    return [position[label] if label in position else position[OTHER] for label in labels]


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float | None]:
    """Top-1 accuracy and macro-F1 (over the classes present in truth or prediction)."""
    if len(y_true) == 0:
        return {"accuracy": None, "macro_f1": None}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


class LabelledImages(Dataset):
    """(image tensor, class index) per file; None when the file fails to decode."""

    def __init__(self, paths: Sequence[Path], targets: Sequence[int], transform: Callable) -> None:
        self.paths = list(paths)
        self.targets = list(targets)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, int] | None:
        try:
            image = load_rgb(self.paths[index])
        except ImageRejected as exc:
            log.warning("skipping %s: %s", self.paths[index], exc)
            return None
        return self.transform(image), self.targets[index]


# ---------------------------------------------------------------------------
# Shared loop machinery
# ---------------------------------------------------------------------------

def _loader(dataset: Dataset, batch_size: int, seed: int | None = None) -> DataLoader:
    """Shuffled and seeded when `seed` is given, in order otherwise."""
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=seed is not None,
        generator=generator,
        num_workers=0,
        collate_fn=drop_rejected,
    )


@dataclass
class _BestEpoch:
    """Remembers the weights of the best epoch seen so far (higher key is better)."""

    epoch: int = -1
    key: tuple[float, ...] | None = None
    state: dict[str, Tensor] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)

    def offer(self, epoch: int, key: tuple[float, ...] | None, model: nn.Module, figures: dict[str, float]) -> None:
        # Without validation data (key None) every epoch supersedes the last.
        if key is None or self.key is None or key > self.key:
            self.epoch, self.key, self.figures = epoch, key, dict(figures)
            self.state = copy.deepcopy(model.state_dict())


def _freeze_batchnorm(module: nn.Module) -> None:
    """Keep BatchNorm on its running statistics: a few samples per batch estimate them badly."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.eval()


# ---------------------------------------------------------------------------
# Classifier
# ---------------------------------------------------------------------------

@dataclass
class FinetuneResult:
    model: nn.Module
    classes: list[str]
    metrics: dict[str, Any]
    history: list[dict[str, float]]


def finetune_classifier(
    manifest: pd.DataFrame,
    images_dir: Path,
    params: FinetuneParams,
    seed: int,
    initial_state: Mapping[str, Tensor] | None = None,
    on_epoch: EpochLogger | None = None,
) -> FinetuneResult:
    """Fine-tune a ResNet-50 to predict `params.label` from the ingested images."""
    make_deterministic(seed)
    files, rejected, unlabelled = _usable_labelled_files(manifest, Path(images_dir), params.label)
    is_train = files["split"] == "train"
    if not is_train.any():
        raise ValueError("no usable training images: nothing to fine-tune on")
    classes = class_names(files.loc[is_train, params.label], params.min_class_size, files.loc[~is_train, params.label])
    if len(classes) < 2:
        log.warning("only %d class for %s: the classifier has nothing to tell apart", len(classes), params.label)
    splits = {split: _split_dataset(files, split, params, classes) for split in ("train", "val", "test")}
    log.info("classes (%s): %s; images train/val/test = %d/%d/%d", params.label, classes,
             len(splits["train"]), len(splits["val"]), len(splits["test"]))

    device = default_device()
    model = build_classifier(len(classes), initial_state).to(device)
    best, history = _train_classifier(model, splits, params, seed, device, on_epoch)
    model.load_state_dict(best.state)

    val = _classify(model, splits["val"], params.batch_size, device)
    test = _classify(model, splits["test"], params.batch_size, device)
    metrics = {
        **best.figures,
        "best_epoch": best.epoch,
        "val_accuracy": val["accuracy"],
        "val_macro_f1": val["macro_f1"],
        "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"],
        "n_classes": len(classes),
        **{f"n_{split}_images": len(dataset) for split, dataset in splits.items()},
        "skipped_images": rejected,
        "unlabelled_images": unlabelled,
    }
    return FinetuneResult(model.cpu(), classes, metrics, history)


def _usable_labelled_files(manifest: pd.DataFrame, images_dir: Path, label: str) -> tuple[pd.DataFrame, int, int]:
    """Manifest rows that have a label and a decodable image (with its path as `file`),
    the number of images rejected, and the number without a label."""
    has_label = manifest[label].notna() & (manifest[label].astype(str).str.strip() != "")
    files = manifest[has_label].assign(file=[images_dir / p for p in manifest.loc[has_label, "path"]])
    rejected = screen_images(files["file"])
    return files[~files["file"].isin(list(rejected))], len(rejected), int((~has_label).sum())


def _split_dataset(files: pd.DataFrame, split: str, params: FinetuneParams, classes: Sequence[str]) -> LabelledImages:
    rows = files[files["split"] == split]
    transform = (classifier_train_transform if split == "train" else classifier_eval_transform)(params.image_size)
    return LabelledImages(list(rows["file"]), class_indices(rows[params.label], classes), transform)


def _train_classifier(
    model: nn.Module,
    splits: dict[str, LabelledImages],
    params: FinetuneParams,
    seed: int,
    device: torch.device,
    on_epoch: EpochLogger | None,
) -> tuple[_BestEpoch, list[dict[str, float]]]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    train_loader = _loader(splits["train"], params.batch_size, seed)
    best, history = _BestEpoch(), []
    for epoch in tqdm(range(params.epochs), desc="finetune", unit="epoch"):
        figures = {"train_loss": _classifier_epoch(model, train_loader, optimizer, loss_fn, device)}
        val = _classify(model, splits["val"], params.batch_size, device)
        key = None
        if val["accuracy"] is not None:
            figures["val_accuracy"] = val["accuracy"]
            # Tiny validation sets tie on accuracy often; the lower loss breaks the tie.
            key = (val["accuracy"], -val["loss"])
        history.append(figures)
        if on_epoch is not None:
            on_epoch(figures)
        best.offer(epoch, key, model, figures)
    return best, history


def _classifier_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                      loss_fn: nn.Module, device: torch.device) -> float:
    model.train()
    total, seen = 0.0, 0
    for batch in loader:
        # BatchNorm cannot normalise a batch of one image in training mode.
        if batch is None or len(batch[0]) < 2:
            continue
        images, targets = batch[0].to(device), batch[1].to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(images), targets)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(targets)
        seen += len(targets)
    return total / seen if seen else float("nan")


@torch.no_grad()
def _classify(model: nn.Module, dataset: LabelledImages, batch_size: int, device: torch.device) -> dict[str, float | None]:
    model.eval()
    targets, predictions, loss = [], [], 0.0
    for batch in _loader(dataset, batch_size):
        if batch is None:
            continue
        logits = model(batch[0].to(device))
        loss += nn.functional.cross_entropy(logits, batch[1].to(device), reduction="sum").item()
        targets.extend(batch[1].tolist())
        predictions.extend(logits.argmax(dim=1).cpu().tolist())
    metrics: dict[str, float | None] = dict(classification_metrics(targets, predictions))
    metrics["loss"] = loss / len(targets) if targets else None
    return metrics


def finetune_card(result: FinetuneResult, params: FinetuneParams, seed: int) -> dict[str, Any]:
    """What a user of models/finetune/model.safetensors needs to know to use it."""
    return {
        "arch": ARCH,
        "label": params.label,
        "classes": result.classes,
        "image_size": params.image_size,
        "normalisation": NORMALISATION,
        "params": {"seed": seed, **params.model_dump(mode="json")},
        "metrics": result.metrics,
    }


# ---------------------------------------------------------------------------
# Siamese regressor
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
    on_epoch: EpochLogger | None = None,
) -> SiameseResult:
    """Regress the descriptor `score` of (original, generated) pairs with an MSE loss.

    `pairs` is the output of `artsim.models.resolve_pairs`: it carries split, score
    and both image paths.
    """
    make_deterministic(seed)
    pairs, skipped = usable_pairs(pairs[pairs["split"].isin(["train", "val"])])
    train_pairs = pairs[pairs["split"] == "train"]
    val_pairs = pairs[pairs["split"] == "val"]
    if train_pairs.empty:
        raise ValueError("no usable training pairs: nothing to train the siamese model on")
    train_mean = float(train_pairs["score"].mean())

    device = default_device()
    model = siamese_from_classifier(trunk_weights, params.head_hidden)
    model.start_at(train_mean)
    model.to(device)
    train_set, val_set = PairImages(train_pairs, params.image_size), PairImages(val_pairs, params.image_size)
    calibrate_feature_norm(model, train_set, params.batch_size, device)
    best, history = _train_regressor(model, train_set, val_set, params, seed, device, on_epoch)
    model.load_state_dict(best.state)

    val_scores = val_pairs["score"].to_numpy(dtype=np.float64)
    metrics = {
        **best.figures,
        "best_epoch": best.epoch,
        "val_baseline_mse": float(np.mean((val_scores - train_mean) ** 2)) if len(val_scores) else None,
        "train_mean_score": train_mean,
        "n_train_pairs": len(train_pairs),
        "n_val_pairs": len(val_pairs),
        "skipped_pairs": skipped,
    }
    return SiameseResult(model.cpu().eval(), train_mean, metrics, history)


@torch.no_grad()
def calibrate_feature_norm(model: SiameseRegressor, pairs: PairImages, batch_size: int, device: torch.device,
                           max_pairs: int = CALIBRATION_PAIRS) -> None:
    """Set the head's feature standardisation to the mean and variance of the training
    pairs' features under the starting trunk (over at most `max_pairs` evenly spread pairs).

    It stays frozen during training, like the trunk's BatchNorm: batch statistics of a
    few pairs would be noise.
    """
    model.eval()
    chosen = np.linspace(0, len(pairs) - 1, num=min(len(pairs), max_pairs)).round().astype(int)
    total = torch.zeros(2 * EMBEDDING_DIM, dtype=torch.float64, device=device)
    total_sq, count = torch.zeros_like(total), 0
    for batch in _loader(Subset(pairs, sorted(set(chosen.tolist()))), batch_size):
        if batch is None:
            continue
        features = model.pair_features(batch[1].to(device), batch[2].to(device)).double()
        total += features.sum(0)
        total_sq += (features**2).sum(0)
        count += len(features)
    if count == 0:
        raise ValueError("no usable training pair to calibrate the siamese head on")
    mean = total / count
    variance = ((total_sq - count * mean**2) / max(count - 1, 1)).clamp_min(0)
    model.feature_norm.running_mean.copy_(mean)
    model.feature_norm.running_var.copy_(variance)


def _siamese_optimizer(model: SiameseRegressor, params: SiameseParams) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        [
            {"params": model.trunk.parameters(), "lr": params.lr * TRUNK_LR_SCALE},
            {"params": model.head.parameters(), "lr": params.lr},
        ],
        weight_decay=params.weight_decay,
    )


def _train_regressor(
    model: SiameseRegressor,
    train_set: PairImages,
    val_set: PairImages,
    params: SiameseParams,
    seed: int,
    device: torch.device,
    on_epoch: EpochLogger | None,
) -> tuple[_BestEpoch, list[dict[str, float]]]:
    optimizer = _siamese_optimizer(model, params)
    train_loader = _loader(train_set, params.batch_size, seed)
    best, history = _BestEpoch(), []
    for epoch in tqdm(range(params.epochs), desc="siamese", unit="epoch"):
        figures = {"train_mse": _regressor_epoch(model, train_loader, optimizer, device)}
        val_mse = _mean_squared_error(model, val_set, params.batch_size, device)
        key = None
        if val_mse is not None:
            figures["val_mse"] = val_mse
            key = (-val_mse,)
        history.append(figures)
        if on_epoch is not None:
            on_epoch(figures)
        best.offer(epoch, key, model, figures)
    return best, history


def _regressor_epoch(model: SiameseRegressor, loader: DataLoader, optimizer: torch.optim.Optimizer,
                     device: torch.device) -> float:
    model.train()
    _freeze_batchnorm(model)
    total, seen = 0.0, 0
    for batch in loader:
        if batch is None:
            continue
        _, original, generated, score = (t.to(device) for t in batch)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(original, generated), score)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(score)
        seen += len(score)
    return total / seen if seen else float("nan")


@torch.no_grad()
def _mean_squared_error(model: SiameseRegressor, dataset: PairImages, batch_size: int, device: torch.device) -> float | None:
    model.eval()
    squared, seen = 0.0, 0
    for batch in _loader(dataset, batch_size):
        if batch is None:
            continue
        _, original, generated, score = (t.to(device) for t in batch)
        squared += ((model(original, generated) - score) ** 2).sum().item()
        seen += len(score)
    return squared / seen if seen else None


def siamese_card(result: SiameseResult, params: SiameseParams, seed: int) -> dict[str, Any]:
    """What evaluate (or any user) needs to rebuild and feed models/siamese/model.safetensors."""
    return {
        "arch": f"siamese {ARCH} trunk, head on concat(|a-b|, a*b)",
        "image_size": params.image_size,
        "normalisation": NORMALISATION,
        "head_hidden": params.head_hidden,
        "train_mean_score": result.train_mean_score,
        "params": {"seed": seed, **params.model_dump(mode="json")},
        "metrics": result.metrics,
    }
