"""Training the siamese regressor of the descriptor score (stage siamese).

The trunk is split at `train_layers`: the frozen bottom's features of each unique image
are computed once and cached on disk (artsim.features), and training runs the trained
top and the head on them. Batches are cut from pairs ordered by original, so the pairs of
one painting (its variants, its negatives) mostly share a batch, and every batch passes
each of its unique images through the top once: an epoch costs in proportion to the
images, not to the pairs.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from artsim.config import SiameseParams
from artsim.distributed import gather_to_all
from artsim.features import FeatureStore, ImageFiles, cache_features, module_digest, split_trunk
from artsim.images import ImageRejected
from artsim.models import ARCH, EMBEDDING_DIM, NORMALISATION, SiameseRegressor, screen_images, siamese_from_classifier
from artsim.training import (
    BestEpoch,
    EpochLogger,
    Runtime,
    distribute,
    freeze_batchnorm,
    make_deterministic,
    share_of,
    sum_over_ranks,
)

log = logging.getLogger(__name__)

# Enough pairs to estimate the head's input statistics without a pass over a huge set.
CALIBRATION_PAIRS = 2048


# ---------------------------------------------------------------------------
# Pairs as indices into a list of unique images
# ---------------------------------------------------------------------------

@dataclass
class PairTable:
    """Pairs over unique images: `images` holds each image file once; a pair is two
    positions in it, its score and its group (the original's position)."""

    images: list[Path]
    first: np.ndarray
    second: np.ndarray
    scores: np.ndarray
    groups: np.ndarray

    @classmethod
    def from_pairs(cls, pairs: pd.DataFrame) -> "PairTable":
        """From resolved pairs (original_path, generated_path, score)."""
        images = list(dict.fromkeys([*pairs["original_path"], *pairs["generated_path"]]))
        position = {path: i for i, path in enumerate(images)}
        first = pairs["original_path"].map(position).to_numpy(dtype=np.int64)
        return cls(
            images=images,
            first=first,
            second=pairs["generated_path"].map(position).to_numpy(dtype=np.int64),
            scores=pairs["score"].to_numpy(dtype=np.float32),
            groups=first,
        )

    def __len__(self) -> int:
        return len(self.scores)


class PairBatches(Dataset):
    """A batch of pairs per item: each unique image's input once, and where each pair's
    two images are among them. Indexed by a list of pair positions (see GroupedPairBatches).

    `inputs(position)` gives an image's input to the trained part: its frozen-bottom
    features from the cache, or the decoded image when nothing is frozen.
    """

    def __init__(self, table: PairTable, inputs: "ImageInputs") -> None:
        self.table = table
        self.inputs = inputs

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, pairs: Sequence[int]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The batch. Pairs whose image became unreadable since screening (a file changed or
        deleted mid-run) are left out, down to a batch of no pairs, which still runs through
        the model: under DDP every rank must take part in every step."""
        pairs = np.asarray(pairs, dtype=np.int64)
        loaded, unreadable = self._load(np.union1d(self.table.first[pairs], self.table.second[pairs]))
        if unreadable:
            pairs = pairs[~(np.isin(self.table.first[pairs], unreadable) | np.isin(self.table.second[pairs], unreadable))]
        first, second = self.table.first[pairs], self.table.second[pairs]
        unique, where = np.unique(np.concatenate([first, second]), return_inverse=True)
        stacked = torch.stack([loaded[int(image)] for image in unique]) if len(unique) else self._no_inputs()
        where = torch.from_numpy(where).long()
        return (torch.from_numpy(pairs), stacked, where[: len(pairs)], where[len(pairs):],
                torch.from_numpy(self.table.scores[pairs]))

    def _load(self, images: np.ndarray) -> tuple[dict[int, Tensor], list[int]]:
        loaded, unreadable = {}, []
        for image in images.tolist():
            try:
                loaded[image] = self.inputs(image)
            except (ImageRejected, OSError, ValueError) as exc:
                log.warning("leaving out the pairs of image %d: %s", image, exc)
                unreadable.append(image)
        return loaded, unreadable

    def _no_inputs(self) -> Tensor:
        """A batch of zero inputs, shaped like any readable image's."""
        for image in range(len(self.table.images)):
            loaded, _ = self._load(np.array([image]))
            if loaded:
                example = loaded[image]
                return example.new_zeros((0, *example.shape))
        raise ValueError("no image of these pairs is readable any more")


class ImageInputs:
    """Image position -> the trained part's input tensor."""

    def __call__(self, image: int) -> Tensor:
        raise NotImplementedError


class CachedFeatures(ImageInputs):
    def __init__(self, store: FeatureStore, digests: Sequence[str]) -> None:
        self.store = store
        self.digests = list(digests)

    def __call__(self, image: int) -> Tensor:
        return self.store.load(self.digests[image])


class DecodedImages(ImageInputs):
    def __init__(self, paths: Sequence[Path], image_size: int) -> None:
        self.image_size = image_size
        self.files = ImageFiles(paths, image_size)

    def __call__(self, image: int) -> Tensor:
        item = self.files[image]
        if item is None:  # screened before training: only a file changed since can get here
            raise ImageRejected("no_longer_decodes", str(self.files.paths[image]))
        return item[1]


class GroupedPairBatches(Sampler[list[int]]):
    """Global batches of `batch_size` pairs, each rank yielding its share of each.

    Every epoch shuffles the groups (originals) with (seed, epoch) and lays their pairs
    end to end before cutting batches, so the pairs of a painting travel together. The
    global batches do not depend on the number of ranks.
    """

    def __init__(self, groups: np.ndarray, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.groups = np.asarray(groups)
        self.batch_size = batch_size
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        names, members = np.unique(self.groups, return_inverse=True)
        order = rng.permutation(len(names))
        rank_of_group = np.empty(len(names), dtype=np.int64)
        rank_of_group[order] = np.arange(len(names))
        # Within a group, pairs keep a shuffled order too (stable sort on a random tie-break).
        ordered = np.lexsort((rng.permutation(len(self.groups)), rank_of_group[members]))
        return [ordered[i:i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            share = batch[self.rank::self.world_size]
            if len(share):
                yield share.tolist()

    def __len__(self) -> int:
        return -(-len(self.groups) // self.batch_size)


def batch_loader(dataset: PairBatches, sampler: Sampler[list[int]], loader_workers: int, runtime: Runtime) -> DataLoader:
    # batch_size=None: the sampler's lists of pairs reach PairBatches whole.
    return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=loader_workers,
                      persistent_workers=loader_workers > 0, pin_memory=runtime.device.type == "cuda")


def in_order(count: int, batch_size: int, positions: Sequence[int] | None = None) -> list[list[int]]:
    positions = list(range(count)) if positions is None else list(positions)
    return [positions[i:i + batch_size] for i in range(0, len(positions), batch_size)]


# ---------------------------------------------------------------------------
# The trained part
# ---------------------------------------------------------------------------

class PairScorer(nn.Module):
    """The trained top of the trunk and the head as one module (what DDP wraps):
    unique inputs -> embeddings -> a score per pair."""

    def __init__(self, model: SiameseRegressor, top: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.top = top

    def forward(self, inputs: Tensor, first: Tensor, second: Tensor) -> Tensor:
        embeddings = self.top(inputs)
        return self.model.score_embeddings(embeddings[first], embeddings[second])


def batch_scores(scorer: nn.Module, batch: Sequence[Tensor], runtime: Runtime) -> tuple[Tensor, Tensor]:
    """(predictions, targets) of one PairBatches item, on the runtime's device."""
    _, inputs, first, second, scores = batch
    if inputs.dim() == 4:
        inputs = runtime.to_device(inputs)
    else:
        inputs = inputs.to(runtime.device)
    with runtime.autocast():
        predictions = scorer(inputs, first.to(runtime.device), second.to(runtime.device))
    return predictions.float(), scores.to(runtime.device)


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
) -> SiameseResult:
    """Regress the descriptor `score` of (original, generated) pairs with an MSE loss.

    `pairs` is the output of `artsim.models.resolve_pairs`: it carries split, score
    and both image paths.
    """
    make_deterministic(seed)
    model = siamese_from_classifier(trunk_weights, params.head_hidden)
    bottom, top = split_trunk(model.trunk, params.train_layers)
    pairs = pairs[pairs["split"].isin(["train", "val"])].reset_index(drop=True)
    inputs, rejected = prepare_inputs(PairTable.from_pairs(pairs).images, bottom, params, runtime)
    bad = pairs["original_path"].isin(rejected) | pairs["generated_path"].isin(rejected)
    pairs = pairs[~bad].reset_index(drop=True)
    train_pairs, val_pairs = (pairs[pairs["split"] == split].reset_index(drop=True) for split in ("train", "val"))
    if train_pairs.empty:
        raise ValueError("no usable training pairs: nothing to train the siamese model on")
    train_mean = float(train_pairs["score"].mean())

    model.start_at(train_mean)
    model.to(runtime.device, memory_format=runtime.memory_format)
    scorer = PairScorer(model, top)
    train_set, val_set = inputs.batches(train_pairs), inputs.batches(val_pairs)
    calibrate_feature_norm(scorer, train_set, params.batch_size, runtime)
    best, history = _train_regressor(scorer, train_set, val_set, params, seed, runtime, on_epoch)
    model.load_state_dict(best.state)

    val_scores = val_pairs["score"].to_numpy(dtype=np.float64)
    metrics = {
        **best.figures,
        "best_epoch": best.epoch,
        "val_baseline_mse": float(np.mean((val_scores - train_mean) ** 2)) if len(val_scores) else None,
        "train_mean_score": train_mean,
        "n_train_pairs": len(train_pairs),
        "n_val_pairs": len(val_pairs),
        "skipped_pairs": int(bad.sum()),
        "cached_features": not isinstance(inputs.inputs, DecodedImages),
    }
    return SiameseResult(model.cpu().eval(), train_mean, metrics, history)


@dataclass
class PreparedInputs:
    """The inputs of every usable image, addressable by path."""

    inputs: ImageInputs
    position: dict[Path, int]

    def batches(self, pairs: pd.DataFrame) -> PairBatches:
        """`pairs` (resolved, a subset of those prepared) as PairBatches over these inputs."""
        table = PairTable.from_pairs(pairs)
        if isinstance(self.inputs, CachedFeatures):
            inputs = CachedFeatures(self.inputs.store, [self.inputs.digests[self.position[p]] for p in table.images])
        else:
            inputs = DecodedImages(table.images, self.inputs.image_size)
        return PairBatches(table, inputs)


def prepare_inputs(images: Sequence[Path], bottom: nn.Module, params: SiameseParams,
                   runtime: Runtime) -> tuple[PreparedInputs, set[Path]]:
    """What the trained part reads per image, and the images that failed to decode.

    With a frozen bottom, its features are cached (each rank computes its share of the
    missing ones); otherwise the images are only screened, decoded again each epoch.
    """
    position = {path: i for i, path in enumerate(images)}
    if len(bottom) == 0:
        rejected = set(screen_images(images))
        return PreparedInputs(DecodedImages(images, params.image_size), position), rejected
    bottom.to(runtime.device, memory_format=runtime.memory_format)
    store = FeatureStore(params.feature_cache, module_digest(bottom, params.image_size, NORMALISATION, "resize"),
                         runtime.compute_dtype)
    mine = list(share_of(len(images), runtime.ranks))
    digests, rejected = cache_features(bottom, [images[i] for i in mine], store, params.image_size,
                                       params.batch_size, runtime.device, params.loader_workers)
    # Also the barrier after which every rank's features are on disk.
    shares = gather_to_all((mine, digests, rejected), runtime.ranks)
    all_digests = [""] * len(images)
    all_rejected: set[Path] = set()
    for positions, share_digests, share_rejected in shares:
        for index, digest in zip(positions, share_digests):
            all_digests[index] = digest
        all_rejected.update(share_rejected)
    # The same content under another name shares the features, and the fate, of the first.
    all_rejected.update(path for path, digest in zip(images, all_digests) if not store.has(digest))
    return PreparedInputs(CachedFeatures(store, all_digests), position), all_rejected


@torch.no_grad()
def calibrate_feature_norm(scorer: PairScorer, pairs: PairBatches, batch_size: int, runtime: Runtime,
                           max_pairs: int = CALIBRATION_PAIRS) -> None:
    """Set the head's feature standardisation to the mean and variance of the training
    pairs' features under the starting trunk (over at most `max_pairs` evenly spread pairs).

    It stays frozen during training, like the trunk's BatchNorm: batch statistics of a
    few pairs would be noise. Every rank computes the same figures.
    """
    model = scorer.model
    scorer.eval()
    chosen = sorted(set(np.linspace(0, len(pairs) - 1, num=min(len(pairs), max_pairs)).round().astype(int).tolist()))
    total = torch.zeros(2 * EMBEDDING_DIM, dtype=torch.float64, device=runtime.device)
    total_sq, count = torch.zeros_like(total), 0
    for batch in batch_loader(pairs, in_order(len(pairs), batch_size, chosen), 0, runtime):
        _, inputs, first, second, _ = batch
        inputs = runtime.to_device(inputs) if inputs.dim() == 4 else inputs.to(runtime.device)
        with runtime.autocast():
            embeddings = scorer.top(inputs)
        embeddings = embeddings.double()
        features = model.combine(embeddings[first.to(runtime.device)], embeddings[second.to(runtime.device)])
        total += features.sum(0)
        total_sq += (features**2).sum(0)
        count += len(features)
    if count == 0:
        raise ValueError("no usable training pair to calibrate the siamese head on")
    mean = total / count
    variance = ((total_sq - count * mean**2) / max(count - 1, 1)).clamp_min(0)
    model.feature_norm.running_mean.copy_(mean)
    model.feature_norm.running_var.copy_(variance)


def _siamese_optimizer(scorer: PairScorer, params: SiameseParams) -> torch.optim.Optimizer:
    trunk = [p for p in scorer.top.parameters() if p.requires_grad]
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
) -> tuple[BestEpoch, list[dict[str, float]]]:
    optimizer = _siamese_optimizer(scorer, params)
    scaler = runtime.grad_scaler()
    ranks = runtime.ranks
    sampler = GroupedPairBatches(train_set.table.groups, params.batch_size, seed, ranks.rank, ranks.world_size)
    loader = batch_loader(train_set, sampler, params.loader_workers, runtime)
    trained = distribute(scorer, runtime)
    best, history = BestEpoch(), []
    for epoch in tqdm(range(params.epochs), desc="siamese", unit="epoch", disable=not ranks.is_main or None):
        sampler.set_epoch(epoch)
        figures = {"train_mse": regressor_epoch(trained, loader, optimizer, scaler, runtime)}
        val_mse = mean_squared_error(scorer, val_set, params.batch_size, runtime)
        key = None
        if val_mse is not None:
            figures["val_mse"] = val_mse
            key = (-val_mse,)
        history.append(figures)
        if on_epoch is not None:
            on_epoch(figures)
        best.offer(epoch, key, scorer.model, figures)
    return best, history


def regressor_epoch(scorer: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, runtime: Runtime) -> float:
    """One pass over the training pairs; the mean squared error over all of them."""
    scorer.train()
    freeze_batchnorm(scorer)
    total, seen = 0.0, 0
    for batch in loader:
        predictions, targets = batch_scores(scorer, batch, runtime)
        squared, count = nn.functional.mse_loss(predictions, targets, reduction="sum"), len(targets)
        # The mean over the global batch: DDP averages gradients over ranks, whose
        # shares of a batch may differ in size (by one pair, or all of it when a share's
        # images became unreadable: that rank still runs backward, with zero gradients).
        global_count, = sum_over_ranks([float(count)], runtime.ranks)
        loss = squared * runtime.ranks.world_size / max(global_count, 1.0)
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
        "arch": f"siamese {ARCH} trunk, head on concat(|a-b|, a*b)",
        "image_size": params.image_size,
        "normalisation": NORMALISATION,
        "head_hidden": params.head_hidden,
        "train_mean_score": result.train_mean_score,
        "params": {"seed": seed, **params.model_dump(mode="json")},
        "metrics": result.metrics,
    }
