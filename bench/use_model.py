"""What applying the model costs, on a workspace after `dvc repro` (docs/using.md).

- compare: `artsim compare A B --json` as a process (start-up included), and the same pair
  through the API after loading, split into decoding, trunk passes, head and descriptors;
- search: `artsim search` over the workspace's originals, cold (empty embedding cache) and warm;
- shortlist: recall@1 of each positive test variant's source among the originals, when the
  head re-ranks only the top-N by embedding cosine, for several N (N = all: the head alone).

Images are read where the pipeline keeps them: inside the ingest and generate tar shards
(`artsim.core.shards.manifest_images`); the CLI runs get the pair's bytes as temporary files.

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
from artsim.app.api import open_image
from artsim.core.images import ImageFile
from artsim.core.shards import manifest_images
from artsim.index.collection import workspace_collection
from artsim.index.query import unit_rows


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
    subprocess.run([sys.executable, "-m", "artsim.app.cli", *args], check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def images_by_id(manifest_path: Path) -> dict[str, ImageFile]:
    """Each manifest row's image (a shard member, or a loose file for a hand-made manifest), by id."""
    manifest = pd.read_parquet(manifest_path)
    return dict(zip(manifest["id"].astype(str), manifest_images(manifest, manifest_path.parent)))


def positive_test_pairs(workspace: Path) -> pd.DataFrame:
    """query (the variant's image), source (its painting's image) and source_id of every positive test pair."""
    pairs = pd.read_parquet(workspace / "data/pairs/pairs.parquet")
    originals = images_by_id(workspace / "data/ingested/manifest.parquet")
    generated = images_by_id(workspace / "data/generated/manifest.parquet")
    test = pairs[(pairs["split"] == "test") & pairs["positive"]]
    return pd.DataFrame({"query": [generated[str(i)] for i in test["generated_id"]],
                         "source": [originals[str(i)] for i in test["original_id"]],
                         "source_id": test["original_id"].astype(str).to_list()})


def shortlist_recall(scorer, workspace: Path, sizes: list[int]) -> dict[str, float]:
    """recall@1 of the source when the head re-ranks the top-N by cosine."""
    candidates = [original.image for original in workspace_collection(workspace).originals]
    # workspace_collection keeps the manifest's row order: the ids say which candidate is the source.
    candidate_ids = pd.read_parquet(workspace / "data/ingested/manifest.parquet")["id"].astype(str).to_list()
    assert len(candidate_ids) == len(candidates)
    pairs = positive_test_pairs(workspace)
    candidate_embeddings = scorer.embed(candidates)
    query_embeddings = scorer.embed(list(pairs["query"]))
    hits = {size: 0 for size in sizes}
    for query, source_id in zip(query_embeddings, pairs["source_id"]):
        cosine = unit_rows(candidate_embeddings) @ unit_rows(query)
        order = np.argsort(-cosine, kind="stable")
        for size in sizes:
            shortlist = order[:size]
            scores = scorer.head_scores(
                torch.as_tensor(query[None, :]), torch.as_tensor(candidate_embeddings[shortlist])
            )
            hits[size] += candidate_ids[shortlist[int(np.argmax(scores))]] == source_id
    return {("all" if size >= len(candidates) else str(size)): hits[size] / len(pairs) for size in sizes} | {
        "n_queries": len(pairs), "n_candidates": len(candidates)}


def as_files(images: list[ImageFile], folder: Path) -> list[Path]:
    """The images' bytes as files the CLI can be given (a shard member has no path of its own)."""
    paths = []
    for index, image in enumerate(images):
        path = folder / f"image{index}.jpg"
        path.write_bytes(image.read_bytes())
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    workspace = args.workspace.resolve()
    pair = positive_test_pairs(workspace).iloc[0]
    scratch = Path(tempfile.mkdtemp(prefix="artsim-bench-"))
    env = {**os.environ, "ARTSIM_CACHE": str(scratch / "cache")}
    query_file, source_file = as_files([pair["query"], pair["source"]], scratch)

    figures: dict = {"torch_threads": torch.get_num_threads()}
    compare_args = ["compare", str(query_file), str(source_file), "--json", "--workspace", str(workspace)]
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
        "descriptors_2_images": timed(
            lambda: [scorer.descriptor.describe_image(i.image) for i in images], args.repeats
        ),
    }
    search_args = ["search", str(query_file), "--json", "--workspace", str(workspace)]
    figures["search_process_cold_s"] = command_seconds(search_args, env)
    figures["search_process_warm_s"] = statistics.median(command_seconds(search_args, env) for _ in range(args.repeats))
    figures["shortlist_recall_at_1"] = shortlist_recall(scorer, workspace, [1, 2, 3, 5, 10, 10_000])
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
