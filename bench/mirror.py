"""What mirror invariance costs per image: the siamese model's embedding (SiameseRegressor.embed: the
trunk over the image and its mirror in one batched pass) against one orientation only (the trunk
over the image alone, the same GeM, projection and L2 normalisation), timed in the same run on the
same batches of sample paintings, alternating the two so that load on the machine hits both alike.

Writes bench/results/mirror.json (ms per image each way, and the ratio) per image size.

Usage (about a minute on 2 CPU cores; pass --device cuda on a GPU):
    .venv/bin/python bench/mirror.py [--sizes 64 224] [--batch 32] [--repeats 5] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artsim.core.images import load_rgb  # noqa: E402
from artsim.learn.models import SiameseRegressor, pair_transform  # noqa: E402
from bench.results import record  # noqa: E402

SAMPLES = sorted((Path(__file__).resolve().parents[1] / "data" / "sample").rglob("*.jpg"))


def one_orientation(model: SiameseRegressor, images: torch.Tensor) -> torch.Tensor:
    """The embedding as it would be without the mirror: the image's own pooled features only."""
    return torch.nn.functional.normalize(model.projection(model.trunk(images)), dim=1)


def batch_of(size: int, count: int, device: torch.device) -> torch.Tensor:
    transform = pair_transform(size)
    images = [transform(load_rgb(SAMPLES[i % len(SAMPLES)])) for i in range(count)]
    return torch.stack(images).to(device)


def seconds(run, images: torch.Tensor, device: torch.device) -> float:
    start = time.perf_counter()
    run(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.no_grad()
def measure(model: SiameseRegressor, size: int, batch: int, repeats: int, device: torch.device) -> list[str]:
    images = batch_of(size, batch, device)
    ways = {"mirrored": model.embed, "one orientation": lambda x: one_orientation(model, x)}
    for run in ways.values():  # warm-up: kernels chosen, memory allocated
        seconds(run, images, device)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, run in ways.items():
            times[name].append(seconds(run, images, device))
    per_image = {name: 1000 * statistics.median(values) / batch for name, values in times.items()}
    ratio = per_image["mirrored"] / per_image["one orientation"]
    print(f"{size} px: {per_image['one orientation']:.2f} ms -> {per_image['mirrored']:.2f} ms per image "
          f"(x{ratio:.2f})", file=sys.stderr)
    return [device.type, str(size), str(batch), f"{per_image['one orientation']:.2f}",
            f"{per_image['mirrored']:.2f}", f"{ratio:.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = SiameseRegressor(head_hidden=256).to(device).eval()  # timing only: the weights do not matter
    rows = [measure(model, size, args.batch, args.repeats, device) for size in args.sizes]
    record("mirror", ["device", "image size", "batch", "ms / image, one orientation", "ms / image, mirrored",
                      "ratio"], rows, note=f"median of {args.repeats} batches each way, alternated")


if __name__ == "__main__":
    main()
