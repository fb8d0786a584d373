"""Ingest throughput and memory at scale, on synthetic 1024-px JPEGs.

- throughput: `ingest` with N workers against the floor, a bare decode + resize + encode
  loop over the same files in the same run (one process), scaled to N cores;
  target: ingest >= floor-per-core x workers / 1.5.
- memory: peak RSS of ingesting `--count` images against ingesting `--small` images,
  each in a fresh process; target: within 1.3x.

Usage: .venv/bin/python bench/ingest.py [--count 20000] [--small 1000] [--workers 2] [--floor-sample 2000]
Synthetic images are cached under --data (default /tmp/artsim-bench-ingest) between runs.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from artsim.ingest.run import IngestSettings, ingest  # noqa: E402
from artsim.ingest.sources.formats import read_folder  # noqa: E402
from bench.synthetic import write_painting  # noqa: E402


def synthetic_painting(index: int, root: Path) -> None:
    write_painting(
        root / f"Style_{index % 20:02d}" / f"artist-{index % 97}_painting-{index}-1900.jpg", index, (1024, 768)
    )


def make_dataset(root: Path, count: int, workers: int) -> Path:
    folder = root / f"n{count}"
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(synthetic_painting, range(count), [folder] * count, chunksize=64))
    return folder


def floor_rate(files: list[Path], max_side: int, quality: int, draft: bool) -> float:
    """Images per second of the bare work, one process: decode, resize, encode.

    With `draft`, the JPEG decoder scales by 1/2, 1/4 or 1/8 while decoding, as ingest
    does: the fair floor. Without it, the naive loop decodes every pixel first.
    """
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        for index, path in enumerate(files):
            with Image.open(path) as img:
                if draft:
                    # draft() keeps both sides at least the size asked: ask for the target size.
                    scale = min(1.0, max_side / max(img.size))
                    img.draft("RGB", (round(img.width * scale), round(img.height * scale)))
                img = img.convert("RGB")
                img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
                img.save(Path(out) / f"{index}.jpg", quality=quality)
        return len(files) / (time.perf_counter() - start)


def run_ingest(source: Path, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        report = ingest(read_folder(source), Path(out), IngestSettings(workers=workers))
        seconds = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "images": report.kept,
        "seconds": seconds,
        "rate": report.kept / seconds,
        "main_peak_mib": own,
        "worker_peak_mib": workers_peak,
    }


def ingest_in_fresh_process(source: Path, workers: int) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--measure", str(source), "--workers", str(workers)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--floor-sample", type=int, default=2_000)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "artsim-bench-ingest")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(run_ingest(args.measure, args.workers)))
        return

    large = make_dataset(args.data, args.count, args.workers)
    small = make_dataset(args.data, args.small, args.workers)
    files = sorted(large.rglob("*.jpg"))[: args.floor_sample]
    settings = IngestSettings()
    naive_floor = floor_rate(files, settings.max_side, settings.jpeg_quality, draft=False)
    floor = floor_rate(files, settings.max_side, settings.jpeg_quality, draft=True)
    big = ingest_in_fresh_process(large, args.workers)
    little = ingest_in_fresh_process(small, args.workers)

    target = floor * args.workers / 1.5
    print(f"naive floor (full decode+resize+encode, 1 process, {len(files)} files): {naive_floor:6.1f} img/s per core")
    print(f"floor (draft decode+resize+encode, 1 process, {len(files)} files): {floor:6.1f} img/s per core")
    print(
        f"ingest, {args.workers} workers, {big['images']} images: {big['rate']:6.1f} img/s "
        f"= {big['rate'] / (floor * args.workers):.2f} x floor x {args.workers} cores "
        f"(target >= {1 / 1.5:.2f}; >= {target:.1f} img/s)"
    )
    print(
        f"peak RSS main process: {little['main_peak_mib']:.0f} MiB for {little['images']} images, "
        f"{big['main_peak_mib']:.0f} MiB for {big['images']} images: "
        f"ratio {big['main_peak_mib'] / little['main_peak_mib']:.2f} (target <= 1.3)"
    )
    print(f"peak RSS largest worker: {little['worker_peak_mib']:.0f} MiB / {big['worker_peak_mib']:.0f} MiB: "
          f"ratio {big['worker_peak_mib'] / little['worker_peak_mib']:.2f}")


if __name__ == "__main__":
    main()
