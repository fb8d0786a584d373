"""What the evaluate stage's retrieval costs as the collection grows, shortlisted against scoring every candidate.

Synthetic inputs (no images): N candidates with 2048-d embeddings, the three default descriptors, pHash and
dHash (and grey thumbnails with --ssim), and Q queries that are noisy copies of some of them, ranked by every
scorer (model head, descriptor score, pHash, dHash, SSIM, fused) through the stage's own code
(artsim.evaluate.scorer_inputs.score_blocks, source_retrieval.retrieval_report) with an untrained head (the
head costs the same trained or not). For each N it times the default shortlist and a shortlist of every
candidate (which does the work of ranking every (query, candidate), as evaluate did before it shortlisted),
and prints each scorer's share of queries whose source fell outside the shortlist, and the peak memory.

Usage (2-core CPU):
    nice -n 10 .venv/bin/python bench/evaluate_shortlist.py --sizes 1000 4000 --queries 300
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artsim.describe.kernels import TextureStats  # noqa: E402
from artsim.evaluate.peers import HASH_NAMES, SSIM_SIZE  # noqa: E402
from artsim.evaluate.scorer_inputs import DescriptorWeighting, ScorerInputs, Shortlisting, score_blocks  # noqa: E402
from artsim.evaluate.source_retrieval import OUTSIDE_SHORTLIST, RetrievalTask, retrieval_report  # noqa: E402
from artsim.index import DEFAULT_SHORTLIST  # noqa: E402
from artsim.learn.models import SiameseRegressor  # noqa: E402
from artsim.score.similarity import DescriptorSet  # noqa: E402

WEIGHTS = {"color": 0.5, "texture": 0.25, "edges": 0.25}


def bits(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**63, size=n).astype(np.uint64)


def synthetic(n: int, queries: int, with_ssim: bool, seed: int = 0
              ) -> tuple[RetrievalTask, ScorerInputs, ScorerInputs, DescriptorWeighting]:
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    true_index = rng.integers(0, n, size=queries)
    embeddings = torch.randn(n, 2048, generator=generator)
    described = DescriptorSet({"color": rng.random((n, 512)), "texture": rng.normal(size=(n, 13)),
                               "edges": rng.random((n, 64))})
    hashes = {name: rng.integers(0, 2**63, size=n).astype(np.uint64) for name in HASH_NAMES}
    greys = rng.integers(0, 256, size=(n, SSIM_SIZE, SSIM_SIZE), dtype=np.uint8) if with_ssim else None
    candidates = ScorerInputs(embeddings, described, hashes, greys)
    query_inputs = ScorerInputs(
        embeddings[true_index] + 2.0 * torch.randn(queries, 2048, generator=generator),
        DescriptorSet({name: np.abs(v[true_index] + rng.normal(scale=0.2, size=v[true_index].shape))
                       for name, v in described.vectors.items()}),
        {name: v[true_index] ^ (bits(rng, queries) & bits(rng, queries)) for name, v in hashes.items()},
        greys[true_index] // 2 + greys[rng.integers(0, n, size=queries)] // 2 if with_ssim else None,
    )
    task = RetrievalTask([f"q{i}" for i in range(queries)], [Path(f"q{i}") for i in range(queries)],
                         [f"c{i}" for i in range(n)], [Path(f"c{i}") for i in range(n)], true_index.astype(np.int64),
                         np.arange(n))
    return task, query_inputs, candidates, DescriptorWeighting(TextureStats.fit(described["texture"]), WEIGHTS)


def timed(model: SiameseRegressor, inputs: tuple, shortlist: int) -> tuple[float, dict]:
    task, queries, candidates, weighting = inputs
    start = time.perf_counter()
    report = retrieval_report(task, score_blocks(model, queries, candidates, weighting, torch.device("cpu"),
                                                 with_fused=True, shortlisting=Shortlisting(shortlist)))
    return time.perf_counter() - start, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--shortlist", type=int, default=DEFAULT_SHORTLIST)
    parser.add_argument("--ssim", action="store_true", help="SSIM too (about 2 ms a pair: slow over every candidate)")
    parser.add_argument("--skip-full", action="store_true", help="time the shortlist only")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = SiameseRegressor(head_hidden=256).eval()
    rows = []
    for n in args.sizes:
        inputs = synthetic(n, args.queries, args.ssim)
        short_s, report = timed(model, inputs, args.shortlist)
        full_s = None if args.skip_full else timed(model, inputs, n)[0]
        rows.append({"candidates": n, "queries": args.queries, "shortlist": args.shortlist,
                     "shortlisted_s": round(short_s, 2), "every_candidate_s": full_s and round(full_s, 2),
                     OUTSIDE_SHORTLIST: {name: figures["collection"][OUTSIDE_SHORTLIST]
                                         for name, figures in report.items()}})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


if __name__ == "__main__":
    main()
