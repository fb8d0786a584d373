"""describe throughput and memory on synthetic 512-px JPEGs.

- throughput: describe (cold descriptor cache) in images/s against the floor, the bare
  decode + resize + greyscale/HSV conversion of the same files in the same run with the same
  worker count; target: describe's time <= 3x the floor's. Also the warm rerun (every
  descriptor from the cache) and, for context, a naive baseline: scikit-image
  graycomatrix/graycoprops at 256 grey levels per image (one process, on a sample).
- memory: peak RSS of describing `--images` against `--small` images, each in a fresh
  process (the main process, and the largest worker); target: within 1.3x.

Usage: nice .venv/bin/python bench/describe.py [--images 20000] [--small 1000] [--workers all] [--naive-sample 200]
Synthetic images are kept under --data (default /tmp/artsim-bench-describe) between runs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from artsim.core.images import load_rgb, resize_long_side  # noqa: E402
from artsim.describe.run import describe_to_parquet  # noqa: E402
from artsim.describe.table import ImageEntry  # noqa: E402
from artsim.params import DescribeParams  # noqa: E402
from bench.synthetic import write_painting  # noqa: E402


def synthetic_image(index: int, folder: Path) -> None:
    write_painting(folder / f"{index:06d}.jpg", index, (512, 384))


def make_images(root: Path, count: int, workers: int) -> list[Path]:
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(synthetic_image, range(count), [folder] * count, chunksize=64))
    return [folder / f"{i:06d}.jpg" for i in range(count)]


def _floor_one(path: Path, size: int) -> int:
    rgb = np.asarray(resize_long_side(load_rgb(path.read_bytes()), size), dtype=np.uint8)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    return int(grey[0, 0]) + int(hsv[0, 0, 0])


def _one_thread() -> None:
    cv2.setNumThreads(1)


def floor_seconds(paths: list[Path], size: int, workers: int) -> float:
    started = time.perf_counter()
    if workers <= 1:
        for path in paths:
            _floor_one(path, size)
    else:
        with ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
            list(pool.map(_floor_one, paths, [size] * len(paths), chunksize=16))
    return time.perf_counter() - started


def naive_rate(paths: list[Path], size: int) -> float:
    """Images/s of per-image scikit-image GLCM at 256 levels (4 directions, 6 props), one process."""
    from skimage.feature import graycomatrix, graycoprops

    started = time.perf_counter()
    for path in paths:
        rgb = np.asarray(resize_long_side(load_rgb(path), size), dtype=np.uint8)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        glcm = graycomatrix(
            grey, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=256, symmetric=True, normed=True
        )
        [
            graycoprops(glcm, prop)
            for prop in ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
        ]
    return len(paths) / (time.perf_counter() - started)


def describe_seconds(paths: list[Path], cache: Path, out: Path, workers: int) -> float:
    entries = [ImageEntry(p.stem, "original", p) for p in paths]
    started = time.perf_counter()
    describe_to_parquet(entries, DescribeParams(), out, cache_root=cache, total=len(entries), workers=workers)
    return time.perf_counter() - started


def peak_rss_mb(paths_file: Path, count: int, workers: int) -> dict[str, float]:
    """Describe the first `count` images in a fresh process; its peak RSS and its largest worker's."""
    code = (
        "import json, resource, sys, tempfile; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from bench.describe import describe_seconds;"
        "paths = [Path(p) for p in Path(sys.argv[2]).read_text().split()[:int(sys.argv[3])]];"
        "d = Path(tempfile.mkdtemp()); describe_seconds(paths, d / 'cache', d / 'out', int(sys.argv[4]));"
        "print(json.dumps({'main_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
        " 'largest_worker_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(REPO_ROOT), str(paths_file), str(count), str(workers)],
                          capture_output=True, text=True, check=True)
    return {k: round(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--naive-sample", type=int, default=200)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "artsim-bench-describe")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    paths = make_images(args.data, args.images, args.workers)
    size = DescribeParams().size
    with tempfile.TemporaryDirectory() as scratch:
        floor_s = floor_seconds(paths, size, args.workers)
        cold_s = describe_seconds(paths, Path(scratch) / "cache", Path(scratch) / "out", args.workers)
        warm_s = describe_seconds(paths, Path(scratch) / "cache", Path(scratch) / "out", args.workers)
        cache_files = sum(1 for _ in (Path(scratch) / "cache").rglob("*.vectors"))
    result = {
        "images": len(paths), "workers": args.workers, "cache_files": cache_files,
        "floor_images_per_s": round(len(paths) / floor_s, 1),
        "describe_cold_images_per_s": round(len(paths) / cold_s, 1),
        "describe_cold_over_floor": round(cold_s / floor_s, 2), "target_over_floor": 3.0,
        "describe_warm_images_per_s": round(len(paths) / warm_s, 1),
        "naive_skimage_glcm256_images_per_s_one_process": round(naive_rate(paths[:args.naive_sample], size), 1),
    }
    if not args.skip_memory:
        paths_file = args.data / "paths.txt"
        paths_file.write_text("\n".join(map(str, paths)))
        small, large = (peak_rss_mb(paths_file, n, args.workers) for n in (args.small, len(paths)))
        result.update({f"peak_rss_{args.small}": small, f"peak_rss_{len(paths)}": large,
                       "main_rss_ratio": round(large["main_mb"] / small["main_mb"], 2), "target_ratio": 1.3})
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
