"""What searching an index and comparing in bulk cost (docs/using.md, "Indexing a collection and bulk use").

- synthetic: an index of N random unit vectors of the model's dimension (2048) with pHashes:
  load time (manifest + checksums, then shape checks only), query latency p50/p95 (one query at a time,
  and per query in batches of 32) through the index (faiss exact inner product + head re-rank of the
  shortlist excluded: synthetic has no model) against plain numpy (`vectors @ q`, argpartition) in the
  same run, and the process' peak memory;
- real: the scale corpus (bench/dvc_scale.py's generator) indexed with a model built in code (the
  siamese at the embedded default's image size, untrained: costs are the same as a trained one's):
  first build, +100 originals, a call with nothing changed, load, query p50/p95 through the index
  against the per-query path it replaced (tests/support/search_oracle.py, embedding cache warm);
- bulk: `compare --pairs` pairs/s over the corpus, and how its time splits (trunk, descriptors).

Usage (2-core CPU; N=1,000,000 needs ~9 GB of disk in --work):
    nice -n 10 .venv/bin/python bench/search.py --synthetic 100000 --real 2000 --pairs 200
    nice -n 10 .venv/bin/python bench/search.py --synthetic 1000000 --real 0 --pairs 0
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss  # noqa: E402

from artsim.index.ann import approximate_index, recall_at_k, top_inner_products  # noqa: E402
from artsim.index.query import IndexSearch  # noqa: E402
from artsim.index.store import Entries, load_index, new_vector_file, save_index  # noqa: E402

DIM = 2048
SHORTLIST = 100


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_index(folder: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    vector_file, vectors = new_vector_file(folder, count, DIM)
    for start in range(0, count, 50_000):
        block = rng.standard_normal((min(50_000, count - start), DIM), dtype=np.float32)
        vectors[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    entries = Entries.empty()
    hashes = rng.integers(0, 2**63, size=count, dtype=np.int64)
    for row in range(count):
        entries.append(ids=f"o{row}", locations=f"o{row}.jpg", sha256=f"{row:064x}", sizes=1, mtimes_ns=1,
                       phash=f"{int(hashes[row]):016x}", artists="", titles="", problems="")
    save_index(folder, "synthetic", folder, entries, vector_file, vectors, np.ones(count, np.float32))


def bench_synthetic(work: Path, count: int, queries: int, hnsw: bool) -> dict:
    folder = work / f"synthetic-{count}"
    started = time.perf_counter()
    synthetic_index(folder, count)
    made = time.perf_counter() - started
    started = time.perf_counter()
    index, problem = load_index(folder, verify_files=True)
    load_verified = time.perf_counter() - started
    started = time.perf_counter()
    index, problem = load_index(folder, verify_files=False)
    searcher = IndexSearch(index)
    load_quick = time.perf_counter() - started
    assert problem is None
    rng = np.random.default_rng(1)
    query_vectors = rng.standard_normal((queries, DIM), dtype=np.float32)
    row = {"n": count, "write_s": made, "load_verified_s": load_verified, "load_s": load_quick}
    searcher.shortlists(query_vectors[:2], SHORTLIST)  # the first touch pages the file in
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        one = []
        for q in query_vectors:
            started = time.perf_counter()
            searcher.shortlists(q[None, :], SHORTLIST)
            searcher.phash_similarities(np.uint64(12345))
            one.append(time.perf_counter() - started)
        row[f"index_1query_{threads}thr"] = percentiles(one)
        started = time.perf_counter()
        for start in range(0, queries, 32):
            searcher.shortlists(query_vectors[start:start + 32], SHORTLIST)
        row[f"index_batched_ms_per_query_{threads}thr"] = 1000 * (time.perf_counter() - started) / queries
    plain = []
    for q in query_vectors:
        started = time.perf_counter()
        scores = index.vectors @ (q / np.linalg.norm(q))
        top = np.argpartition(-scores, SHORTLIST)[:SHORTLIST]
        top[np.argsort(-scores[top])]
        plain.append(time.perf_counter() - started)
    row["numpy_1query"] = percentiles(plain)
    if hnsw:  # HNSW over the whole set: its recall against exact, on a sample of queries
        sample = np.ascontiguousarray(query_vectors[:20] / np.linalg.norm(query_vectors[:20], axis=1, keepdims=True))
        started = time.perf_counter()
        graph = approximate_index(np.asarray(index.vectors))
        row["hnsw_build_s"] = time.perf_counter() - started
        _, exact = top_inner_products(sample, index.vectors, 10)
        started = time.perf_counter()
        _, approximate = graph.search(sample, 10)
        row["hnsw_ms_per_query"] = 1000 * (time.perf_counter() - started) / len(sample)
        row["hnsw_recall_at_10"] = recall_at_k(exact, approximate)
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def bench_real(work: Path, count: int, queries: int, pairs: int) -> dict:
    import torch

    from artsim.app.bulk import compare_pairs
    from artsim.app.indexes import decoded_queries, index_collection, searcher_for
    from artsim.index.folder import folder_collection
    from bench.dvc_scale import build_dataset
    from tests.support.search_oracle import EmbeddingCache, search
    torch.manual_seed(0)
    scorer = _model(work)
    source, _imported = build_dataset(work / f"corpus-{count + 100}", count + 100, 512)
    originals = sorted(source.rglob("*.jpg"))
    corpus = work / f"originals-{count}"
    if not corpus.exists():
        corpus.mkdir()
        for path in originals[:count]:
            (corpus / path.name).symlink_to(path)
    row: dict = {"n": count}
    timings = {}
    for label in ("first", "unchanged"):
        started = time.perf_counter()
        opened = index_collection(scorer, folder_collection(corpus), work / f"index-{count}")
        timings[label] = time.perf_counter() - started
    for path in originals[count:count + 100]:
        (corpus / path.name).symlink_to(path)
    started = time.perf_counter()
    opened = index_collection(scorer, folder_collection(corpus), work / f"index-{count}")
    timings["plus_100"] = time.perf_counter() - started
    row["build_s"] = timings
    started = time.perf_counter()
    load_index(work / f"index-{count}")
    row["load_s"] = time.perf_counter() - started
    query_paths = [str(p) for p in originals[: queries]]
    searcher = searcher_for(scorer, opened)
    one = []
    for query in query_paths:
        started = time.perf_counter()
        list(searcher.search(decoded_queries([query]), 5, "model"))
        one.append(time.perf_counter() - started)
    row["index_query"] = percentiles(one)
    started = time.perf_counter()
    list(searcher.search(decoded_queries(query_paths), 5, "model"))
    row["index_batched_ms_per_query"] = 1000 * (time.perf_counter() - started) / len(query_paths)
    cache, candidates = (
        EmbeddingCache(work / "embedding-cache", scorer.fingerprint),
        folder_collection(corpus).originals,
    )
    search(scorer, query_paths[0], candidates, cache=cache)  # warm the per-query path's cache
    legacy = []
    for query in query_paths[:3]:
        started = time.perf_counter()
        search(scorer, query, candidates, cache=cache)
        legacy.append(time.perf_counter() - started)
    row["per_query_path"] = percentiles(legacy)
    if pairs:
        row["bulk"] = bench_bulk(scorer, originals, pairs, compare_pairs)
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def bench_bulk(scorer, originals: list[Path], count: int, compare_pairs) -> dict:
    from artsim.app.api import open_image

    rng = np.random.default_rng(2)
    chosen = [(str(originals[i]), str(originals[j])) for i, j in rng.integers(0, len(originals), size=(count, 2))]
    started = time.perf_counter()
    rows = list(compare_pairs(scorer, chosen))
    total = time.perf_counter() - started
    sample = [open_image(p) for p in {p for pair in chosen[:20] for p in pair}]
    started = time.perf_counter()
    for image in sample:
        scorer.descriptor.describe_image(image.image)
    describe_each = (time.perf_counter() - started) / len(sample)
    started = time.perf_counter()
    scorer._embed_loaded(sample)
    embed_each = (time.perf_counter() - started) / len(sample)
    return {"pairs": len(rows), "pairs_per_s": len(rows) / total, "describe_ms_per_image": 1000 * describe_each,
            "embed_ms_per_image": 1000 * embed_each}


def _model(work: Path):
    """The siamese model folder the pipeline ships, from an untrained model at image_size 64 (params.yaml siamese)."""
    import artsim
    from artsim.describe.texture import HARALICK_FEATURES
    from artsim.learn.models import NORMALISATION, SiameseRegressor, save_weights
    from artsim.params import DescribeParams, ScoreWeights
    from artsim.score.scorer import DescriptorScorer
    from artsim.score.similarity import TextureStats

    folder = work / "model"
    if not (folder / "model.safetensors").exists():
        folder.mkdir(parents=True, exist_ok=True)
        model = SiameseRegressor(head_hidden=64)
        model.start_at(0.5)
        save_weights(model.eval(), folder / "model.safetensors")
        (folder / "card.json").write_text(
            json.dumps({"image_size": 64, "head_hidden": 64, "normalisation": NORMALISATION})
        )
        stats = TextureStats(mean=np.zeros(HARALICK_FEATURES), std=np.ones(HARALICK_FEATURES))
        DescriptorScorer(DescribeParams(), ScoreWeights(), stats).save(folder / "descriptor_score.json")
    return artsim.load(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, nargs="*", default=[100_000])
    parser.add_argument("--real", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--hnsw", action="store_true", help="also build HNSW over each synthetic set (slow) and measure its recall@10"
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-search-"))
    for count in args.synthetic:
        print(json.dumps({"synthetic": bench_synthetic(work, count, args.queries, args.hnsw)}), flush=True)
    if args.real:
        print(json.dumps({"real": bench_real(work, args.real, min(args.queries, 20), args.pairs)}), flush=True)


if __name__ == "__main__":
    main()
