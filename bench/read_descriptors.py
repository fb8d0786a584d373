"""Peak memory of reading descriptors.parquet: a synthetic file of `--rows` images at the default
describe params (every registered descriptor, in row groups as describe writes them), read by
read_descriptors in a fresh process. Prints that process's peak RSS and the read's share of it
per image (the peak above that of reading an empty file), beside the floats' own size (what
the matrices hold).

Usage: nice .venv/bin/python bench/read_descriptors.py [--rows 16000 64000] [--folder /tmp/read-descriptors]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from artsim.describe.registry import describe_array  # noqa: E402
from artsim.describe.run import DescriptorWriter  # noqa: E402
from artsim.describe.table import Descriptors, ImageEntry, read_descriptors  # noqa: E402
from artsim.params import DescribeParams  # noqa: E402


def vector_lengths() -> dict[str, int]:
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return {name: len(v) for name, v in describe_array(image, DescribeParams()).vectors.items()}


def write_synthetic(path: Path, rows: int, seed: int = 0) -> None:
    rng, lengths, writer = np.random.default_rng(seed), vector_lengths(), DescriptorWriter(path)
    for k in range(rows):
        vectors = {name: rng.random(n) for name, n in lengths.items()}
        writer.add(ImageEntry(f"{k:016x}", "original", path), Descriptors(**vectors))
    writer.close()


def measure(path: Path) -> dict:
    """In this process (run fresh): read the file once; its peak RSS and the floats' size."""
    images = read_descriptors(path)
    floats = sum(matrix.nbytes for matrix in images.vectors.values())
    return {"rows": len(images), "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "floats_mib": round(floats / 2**20, 1)}


def peak_of(path: Path, rows: int) -> dict:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic(path, rows)
    out = subprocess.run([sys.executable, __file__, "--measure", str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[16_000, 64_000])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/read-descriptors"))
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the fresh process's side
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    empty = peak_of(args.folder / "descriptors-0.parquet", 0)  # the imports and the reader's own
    print(json.dumps(empty))
    for rows in args.rows:
        figures = peak_of(args.folder / f"descriptors-{rows}.parquet", rows)
        above = figures["peak_rss_mib"] - empty["peak_rss_mib"]
        print(json.dumps({**figures, "read_mib": round(above, 1),
                          "per_image_bytes": round(above * 2**20 / rows), "floats_per_image_bytes":
                          round(figures["floats_mib"] * 2**20 / rows)}))

if __name__ == "__main__":
    main()
