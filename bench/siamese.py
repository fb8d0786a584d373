"""Siamese training cost: cached frozen-trunk features against the naive path, and the loader.

On the same synthetic pairs (each original with `--variants` variants and `--negatives`
negative pairs, as the score stage builds them), in one process:

- naive epoch: both images of every pair decoded (after the first epoch: from a cache of
  resized images) and passed through the whole ResNet-50, gradients into the trained stages;
- cached epoch: the frozen bottom's features read from the on-disk cache (computed once,
  timed separately), the trained top run once per unique image of a batch.
  Target: cached >= 3x faster per epoch.
- loader: the cached epoch's train steps fed by the real loader (features read from disk
  per batch) against the same steps on batches pre-loaded in memory. Target: >= 0.9.

Usage: .venv/bin/python bench/siamese.py [--originals 40] [--variants 3] [--negatives 2]
       [--image-size 64] [--train-layers layer4] [--epochs 2] [--loader-workers 0] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from artsim.learn.features import split_trunk  # noqa: E402
from artsim.learn.models import SiameseRegressor, drop_rejected  # noqa: E402
from artsim.learn.pair_images import PairImages  # noqa: E402
from artsim.learn.training import Runtime, freeze_batchnorm  # noqa: E402
from artsim.params import SiameseParams  # noqa: E402
from artsim.siamese.batches import GroupedPairBatches, PairTable, batch_loader  # noqa: E402
from artsim.siamese.train import PairScorer, prepare_inputs, regressor_epoch  # noqa: E402
from tests.support.helpers import random_painting  # noqa: E402


def write_painting(seed: int, size: tuple[int, int], path: Path) -> None:
    random_painting(seed, size).save(path, quality=95)


def synthetic_pairs(root: Path, originals: int, variants: int, negatives: int, seed: int = 0) -> pd.DataFrame:
    """Originals (512 px) and variants (256 px) on disk, and their positive and negative pairs."""
    rng = np.random.default_rng(seed)
    rows, jobs = [], []
    for i in range(originals):
        original = root / f"o{i}.jpg"
        jobs.append((i, (512, 384), original))
        for v in range(variants):
            variant = root / f"g{i}_{v}.jpg"
            jobs.append((1_000_000 + i * variants + v, (256, 192), variant))
            rows.append((i, original, variant, True))
    with ProcessPoolExecutor() as pool:
        list(pool.map(write_painting, *zip(*jobs), chunksize=64))
    for i in range(originals):
        for _ in range(negatives):
            other = (i + 1 + int(rng.integers(originals - 1))) % originals
            rows.append((i, root / f"o{i}.jpg", root / f"g{other}_{int(rng.integers(variants))}.jpg", False))
    return pd.DataFrame({
        "group": [r[0] for r in rows],
        "original_path": [r[1] for r in rows],
        "generated_path": [r[2] for r in rows],
        "positive": [r[3] for r in rows],
        "score": rng.uniform(0.1, 0.9, len(rows)).astype(np.float32),
        "split": "train",
    })


def synchronised(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def optimiser(model: SiameseRegressor) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)


def naive_epoch(model: SiameseRegressor, pairs: PairImages, batch_size: int, device: torch.device) -> float:
    """The first version's training epoch: model(a, b) per pair, two full trunk passes."""
    optimizer = optimiser(model)
    loader = torch.utils.data.DataLoader(pairs, batch_size=batch_size, shuffle=True, collate_fn=drop_rejected,
                                         generator=torch.Generator().manual_seed(0))
    model.train()
    freeze_batchnorm(model)
    start = time.perf_counter()
    for _, original, generated, score in loader:
        loss = nn.functional.mse_loss(model(original.to(device), generated.to(device)), score.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return synchronised(device) - start


def timed_epoch(scorer: PairScorer, loader, runtime: Runtime) -> float:
    optimizer = optimiser(scorer.model)
    start = time.perf_counter()
    regressor_epoch(scorer, loader, optimizer, runtime.grad_scaler(), runtime)
    return synchronised(runtime.device) - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--originals", type=int, default=40)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--negatives", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-layers", nargs="*", default=["layer4"])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per path (the best is reported)")
    parser.add_argument("--loader-workers", type=int, default=0)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="cached path only (GPU)")
    parser.add_argument("--skip-naive", action="store_true", help="measure the cached path and its loader only")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    runtime = Runtime(device, precision=args.precision)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pairs = synthetic_pairs(root, args.originals, args.variants, args.negatives)
        table = PairTable.from_pairs(pairs)
        print(f"{len(pairs)} pairs over {len(table.images)} unique images ({args.originals} originals, "
              f"{args.variants} variants + {args.negatives} negative pairs each), {args.image_size} px, "
              f"train_layers {args.train_layers}, {device}, cached path in {args.precision}")

        model = SiameseRegressor(head_hidden=256).to(device)
        bottom, top = split_trunk(model.trunk, args.train_layers)
        params = SiameseParams(image_size=args.image_size, batch_size=args.batch_size,
                               train_layers=args.train_layers, feature_cache=root / "features")
        start = time.perf_counter()
        inputs, _ = prepare_inputs(table.images, bottom, params, runtime)
        caching = time.perf_counter() - start
        dataset = inputs.batches(pairs)
        sampler = GroupedPairBatches(table.groups, args.batch_size, seed=0)
        scorer = PairScorer(model, top)

        naive = None if args.skip_naive else min(
            naive_epoch(model, PairImages(pairs, args.image_size), args.batch_size, device) for _ in range(args.epochs))
        # One loader for all epochs (persistent workers): the best epoch excludes their start-up.
        loader = batch_loader(dataset, sampler, args.loader_workers, runtime)
        cached = min(timed_epoch(scorer, loader, runtime) for _ in range(args.epochs))
        preloaded_batches = [dataset[batch] for batch in sampler]
        preloaded = min(timed_epoch(scorer, preloaded_batches, runtime) for _ in range(args.epochs))

    print(f"one-time feature caching: {caching:6.2f} s")
    if naive is not None:
        print(f"naive epoch (two trunk passes per pair): {naive:6.2f} s")
    print(f"cached epoch (real loader):              {cached:6.2f} s" +
          ("" if naive is None else f"   -> {naive / cached:.1f}x faster (target >= 3x)"))
    print(f"cached epoch (pre-loaded batches):       {preloaded:6.2f} s   -> loader keeps {preloaded / cached:.2f} "
          "of pre-loaded throughput (target >= 0.9)")


if __name__ == "__main__":
    main()
