"""Does the finetune data loader keep up with the train steps?

The same train steps (ResNet-50, AdamW) timed twice in one process: fed by the real loader
(JPEG decode + random resized crop + flip per image, `--loader-workers` processes) and fed
by the same batches pre-loaded in memory. Target: real / pre-loaded throughput >= 0.9.

Usage: .venv/bin/python bench/finetune_loader.py [--images 96] [--image-size 96] [--batch-size 16]
       [--loader-workers 0] [--device cpu|cuda] [--precision fp32|bf16|fp16]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from artsim.finetune.data import LabelledImages  # noqa: E402
from artsim.finetune.data import train_loader as _train_loader  # noqa: E402
from artsim.finetune.train import _classifier_epoch  # noqa: E402
from artsim.learn.models import build_classifier, classifier_train_transform  # noqa: E402
from artsim.learn.training import Runtime  # noqa: E402
from artsim.params import FinetuneParams  # noqa: E402
from tests.support.helpers import random_painting  # noqa: E402


def timed(model, batches, runtime: Runtime) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    start = time.perf_counter()
    _classifier_epoch(model, batches, optimizer, runtime.grad_scaler(), runtime)
    if runtime.device.type == "cuda":
        torch.cuda.synchronize(runtime.device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--loader-workers", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per feed (the best is reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = parser.parse_args()
    runtime = Runtime(torch.device(args.device), args.precision)
    params = FinetuneParams(image_size=args.image_size, batch_size=args.batch_size, loader_workers=args.loader_workers)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.images):
            path = Path(tmp) / f"{i}.jpg"
            random_painting(i, (512, 384)).save(path, quality=95)
            paths.append(path)
        dataset = LabelledImages(
            paths, [i % 5 for i in range(args.images)], classifier_train_transform(args.image_size)
        )
        model = build_classifier(5).to(runtime.device, memory_format=runtime.memory_format)
        loader = _train_loader(dataset, params, seed=0, runtime=runtime)
        real = min(timed(model, loader, runtime) for _ in range(args.epochs))
        preloaded_batches = list(loader)
        preloaded = min(timed(model, preloaded_batches, runtime) for _ in range(args.epochs))
    print(f"{args.images} images of 512 px -> {args.image_size} px, batch {args.batch_size}, "
          f"{args.loader_workers} loader workers, {args.device}, {args.precision}")
    print(f"epoch with the real loader:    {real:6.2f} s")
    print(f"epoch on pre-loaded batches:   {preloaded:6.2f} s   -> loader keeps {preloaded / real:.2f} "
          "of pre-loaded throughput (target >= 0.9)")


if __name__ == "__main__":
    main()
