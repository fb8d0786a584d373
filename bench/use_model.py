"""What applying the model costs, on a workspace after `dvc repro` (README, "Use the model").

- compare: `artsim compare A B --json` as a process (start-up included), and the same pair
  through the API after loading, split into decoding, trunk passes, head and descriptors;
- search: `artsim search` over the workspace's originals, cold (empty embedding cache) and warm;
- shortlist: recall@1 of each positive test variant's source among the originals, when the
  head re-ranks only the top-N by embedding cosine, for several N (N = all: the head alone).

Usage: .venv/bin/python bench/use_model.py WORKSPACE [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import artsim
from artsim.api import open_image
from artsim.search import cosine_similarities, workspace_candidates


def timed(function, repeats: int) -> float:
    """Median seconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command_seconds(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "artsim.cli", *args], check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def positive_test_pairs(workspace: Path) -> pd.DataFrame:
    pairs = pd.read_parquet(workspace / "data/pairs/pairs.parquet")
    originals = pd.read_parquet(workspace / "data/ingested/manifest.parquet").set_index("id")["path"]
    generated = pd.read_parquet(workspace / "data/generated/manifest.parquet").set_index("id")["path"]
    test = pairs[(pairs["split"] == "test") & pairs["positive"]]
    return pd.DataFrame({"query": [workspace / "data/generated" / generated[i] for i in test["generated_id"]],
                         "source": [workspace / "data/ingested" / originals[i] for i in test["original_id"]]})


def shortlist_recall(scorer, workspace: Path, sizes: list[int]) -> dict[str, float]:
    """recall@1 of the source when the head re-ranks the top-N by cosine."""
    candidates = [c.path for c in workspace_candidates(workspace)]
    pairs = positive_test_pairs(workspace)
    candidate_embeddings = scorer.embed(candidates)
    query_embeddings = scorer.embed(list(pairs["query"]))
    hits = {size: 0 for size in sizes}
    for query, source in zip(query_embeddings, pairs["source"]):
        cosine = cosine_similarities(query, candidate_embeddings)
        order = np.argsort(-cosine, kind="stable")
        for size in sizes:
            shortlist = order[:size]
            scores = scorer.head_scores(torch.as_tensor(query[None, :]), torch.as_tensor(candidate_embeddings[shortlist]))
            hits[size] += candidates[shortlist[int(np.argmax(scores))]] == source
    return {("all" if size >= len(candidates) else str(size)): hits[size] / len(pairs) for size in sizes} | {
        "n_queries": len(pairs), "n_candidates": len(candidates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    workspace = args.workspace.resolve()
    pair = positive_test_pairs(workspace).iloc[0]
    env = {**os.environ, "ARTSIM_CACHE": tempfile.mkdtemp(prefix="artsim-bench-")}

    figures: dict = {"torch_threads": torch.get_num_threads()}
    compare_args = ["compare", str(pair["query"]), str(pair["source"]), "--json", "--workspace", str(workspace)]
    figures["compare_process_s"] = statistics.median(command_seconds(compare_args, env) for _ in range(args.repeats))
    start = time.perf_counter()
    scorer = artsim.load(workspace)
    figures["load_s"] = time.perf_counter() - start
    scorer.score(pair["query"], pair["source"])  # warm-up
    figures["compare_api_s"] = timed(lambda: scorer.score(pair["query"], pair["source"]), args.repeats)
    images = [open_image(pair["query"]), open_image(pair["source"])]
    figures["api_parts_s"] = {
        "decode": timed(lambda: [open_image(p) for p in (pair["query"], pair["source"])], args.repeats),
        "trunk_forward_2_images": timed(lambda: scorer._embed_loaded(images), args.repeats),
        "descriptors_2_images": timed(lambda: [scorer.descriptor.describe_image(i.image) for i in images], args.repeats),
    }
    search_args = ["search", str(pair["query"]), "--json", "--workspace", str(workspace)]
    figures["search_process_cold_s"] = command_seconds(search_args, env)
    figures["search_process_warm_s"] = statistics.median(command_seconds(search_args, env) for _ in range(args.repeats))
    figures["shortlist_recall_at_1"] = shortlist_recall(scorer, workspace, [1, 2, 3, 5, 10, 10_000])
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
