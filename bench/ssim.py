"""What an SSIM costs evaluate: artsim.evaluate.peers.structural_similarity against scikit-image's, in turn on the
same pairs (the sample's grey 128 px thumbnails, each against every other), one thread each. evaluate scores
SSIM on every held-out test pair and on each sampled query's shortlist, plain and under every alteration: at
N = 500 it was most of the stage's CPU time (py-spy on bench/growth.py's run).

    .venv/bin/python bench/ssim.py [--rounds 3]
Writes bench/results/ssim.json.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import structural_similarity as skimage_ssim

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from artsim.core.images import load_rgb  # noqa: E402
from artsim.evaluate.peers import signature, structural_similarity  # noqa: E402
from bench.results import record  # noqa: E402
from tests.support.helpers import SAMPLE_DIR  # noqa: E402


def per_pair_ms(ssim, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    values = np.array([ssim(a, b, data_range=255) for a, b in pairs])
    return (time.perf_counter() - start) * 1e3 / len(pairs), values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="each timed this many times in turn; the best kept")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    greys = [signature(load_rgb(path)).grey for path in sorted(SAMPLE_DIR.rglob("*.jpg"))]
    pairs = list(itertools.combinations(greys, 2))
    timed: dict[str, list[float]] = {"scikit-image": [], "artsim": []}
    for _ in range(args.rounds):
        library_ms, expected = per_pair_ms(skimage_ssim, pairs)
        ours_ms, values = per_pair_ms(structural_similarity, pairs)
        timed["scikit-image"].append(library_ms)
        timed["artsim"].append(ours_ms)
    library, ours = min(timed["scikit-image"]), min(timed["artsim"])
    difference = float(np.abs(values - expected).max())
    print(f"{len(pairs)} pairs: scikit-image {library:.3f} ms, artsim {ours:.3f} ms a pair ({library / ours:.1f}x); "
          f"largest difference {difference:.1e}")
    record("ssim", ["implementation", "ms a pair (best round)", "speed-up", "largest difference from scikit-image"], [
        ["scikit-image structural_similarity", f"{library:.3f}", "1.0x", "—"],
        ["artsim.evaluate.peers.structural_similarity", f"{ours:.3f}", f"{library / ours:.1f}x", f"{difference:.1e}"],
    ], note=f"{len(pairs)} pairs of the sample's grey {greys[0].shape[0]} px thumbnails, one thread, "
            f"{args.rounds} rounds in turn, the best of each")


if __name__ == "__main__":
    main()
