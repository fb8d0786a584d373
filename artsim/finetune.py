"""Fine-tuning a ResNet-50 to classify the paintings' style or genre (stage finetune).

Trains for a fixed number of epochs, keeps the weights of the epoch that did best on the
validation split (the last epoch without validation data), and reports top-1, top-5 and
macro-F1 on val and test. Runs alone or as one rank of a torchrun launch (training.py).
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from artsim.config import FinetuneParams
from artsim.distributed import gather_to_all
from artsim.images import ImageRejected, load_rgb
from artsim.models import (
    ARCH,
    NORMALISATION,
    build_classifier,
    classifier_eval_transform,
    classifier_train_transform,
    drop_rejected,
    screen_images,
)
from artsim.training import (
    BestEpoch,
    EpochLogger,
    Runtime,
    distribute,
    make_deterministic,
    share_of,
    sum_over_ranks,
    unwrapped,
)

log = logging.getLogger(__name__)

OTHER = "other"
TOP_K = 5


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


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int],
                           top_k_hits: Sequence[bool] | None = None) -> dict[str, float | None]:
    """Top-1 accuracy, macro-F1 (over the classes present in truth or prediction) and,
    when given which samples had their class among the top k, top-k accuracy."""
    if len(y_true) == 0:
        return {"accuracy": None, "macro_f1": None, "top5_accuracy": None}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "top5_accuracy": None if top_k_hits is None else float(np.mean(top_k_hits)),
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

    model = build_classifier(len(classes), initial_state).to(runtime.device, memory_format=runtime.memory_format)
    best, history = _train_classifier(distribute(model, runtime), splits, params, seed, runtime, on_epoch)
    model.load_state_dict(best.state)

    val = _classify(model, splits["val"], params, runtime)
    test = _classify(model, splits["test"], params, runtime)
    metrics = {
        **best.figures,
        "best_epoch": best.epoch,
        **{f"val_{name}": value for name, value in val.metrics.items() if name != "loss"},
        **{f"test_{name}": value for name, value in test.metrics.items() if name != "loss"},
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


def _train_loader(dataset: Dataset, params: FinetuneParams, seed: int, runtime: Runtime) -> DataLoader:
    """Each rank's share of every global batch of `params.batch_size` images.

    The same DistributedSampler runs alone (one replica): the global batches of one
    process and of N ranks are the same images.
    """
    ranks = runtime.ranks
    sampler = DistributedSampler(dataset, num_replicas=ranks.world_size, rank=ranks.rank, shuffle=True, seed=seed)
    return DataLoader(
        dataset,
        batch_size=max(1, params.batch_size // ranks.world_size),
        sampler=sampler,
        num_workers=params.loader_workers,
        persistent_workers=params.loader_workers > 0,
        pin_memory=runtime.device.type == "cuda",
        collate_fn=drop_rejected,
        generator=torch.Generator().manual_seed(seed),  # seeds the workers' augmentation
    )


def _train_classifier(
    model: nn.Module,
    splits: dict[str, LabelledImages],
    params: FinetuneParams,
    seed: int,
    runtime: Runtime,
    on_epoch: EpochLogger | None,
) -> tuple[BestEpoch, list[dict[str, float]]]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    scaler = runtime.grad_scaler()
    loader = _train_loader(splits["train"], params, seed, runtime)
    best, history = BestEpoch(), []
    for epoch in tqdm(range(params.epochs), desc="finetune", unit="epoch", disable=not runtime.ranks.is_main or None):
        loader.sampler.set_epoch(epoch)
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
        best.offer(epoch, key, model, figures)
    return best, history


def _classifier_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler, runtime: Runtime) -> float:
    model.train()
    total, seen = 0.0, 0
    for batch in loader:
        # BatchNorm cannot normalise a batch of one image in training mode.
        if batch is None or len(batch[0]) < 2:
            continue
        images, targets = runtime.to_device(batch[0]), batch[1].to(runtime.device)
        optimizer.zero_grad()
        with runtime.autocast():
            loss = nn.functional.cross_entropy(model(images), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.item() * len(targets)
        seen += len(targets)
    total, seen = sum_over_ranks([total, seen], runtime.ranks)
    return total / seen if seen else float("nan")


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
    loader = DataLoader(share, batch_size=params.batch_size, num_workers=params.loader_workers, collate_fn=drop_rejected)
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
        "params": {"seed": seed, **params.model_dump(mode="json")},
        "metrics": result.metrics,
    }
