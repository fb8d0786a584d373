"""What searching an index costs (docs/using.md, "Indexing a collection and bulk use").

- synthetic COUNT:DIM: an index of COUNT synthetic unit vectors of width DIM (a decaying spectrum, as a trunk's
  embeddings have) written through save_index, so past artsim.index.ann.EXACT_LIMIT the compact approximate
  index is built as for a real collection (its build time reported). On one core (faiss threads 1), one query
  at a time (queries: stored rows plus noise, cosine ~0.9, as a variant is near its original): the exact search
  and the compact index's p50/p95, the compact index's recall@10 against the exact search, load time, and the
  memory-bandwidth floor measured here (one core summing 1 GB in RAM) with the time a full scan of the float32
  vectors needs at that rate. Writes bench/results/search.json.
- real: the scale corpus (bench/dvc_scale.py's generator) indexed with a model built in code (the
  siamese at the embedded default's image size, untrained: costs are the same as a trained one's):
  first build, +100 originals, a call with nothing changed, load, query p50/p95 through the index
  against the per-query path it replaced (tests/support/search_oracle.py, embedding cache warm).
Bulk `compare --pairs`: bench/bulk.py.

Usage (2-core CPU; 1,000,000 x 512 needs ~2.5 GB of disk in --work, 100,000 x 2048 ~1 GB):
    nice -n 10 .venv/bin/python bench/search.py --synthetic 100000:2048 1000000:512 --real 0
    nice -n 10 .venv/bin/python bench/search.py --synthetic --real 2000
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

from artsim.index.ann import recall_at_k, top_inner_products  # noqa: E402
from artsim.index.store import ANN, Entries, load_index, new_vector_file, save_index  # noqa: E402
from artsim.learn.models import DEFAULT_EMBEDDING_DIM  # noqa: E402
from bench.results import record  # noqa: E402

DIM = DEFAULT_EMBEDDING_DIM  # the siamese model's embedding width
SHORTLIST = 100


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_vectors(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """Unit rows with a decaying spectrum (a trunk's embeddings put most of their variance in few directions;
    isotropic noise has no neighbours worth finding): coordinate i scaled by (1 + i) ** -0.5."""
    block = rng.standard_normal((count, dim), dtype=np.float32) * (1.0 + np.arange(dim, dtype=np.float32)) ** -0.5
    return block / np.linalg.norm(block, axis=1, keepdims=True)


def synthetic_index(folder: Path, count: int, dim: int, seed: int = 0) -> float:
    """An index of `count` synthetic originals written through save_index (so the compact index is built as a
    real one is); the seconds that build took."""
    rng = np.random.default_rng(seed)
    vector_file, vectors = new_vector_file(folder, count, dim)
    for start in range(0, count, 50_000):
        vectors[start:start + 50_000] = synthetic_vectors(rng, min(50_000, count - start), dim)
    entries = Entries.empty()
    hashes = rng.integers(0, 2**63, size=count, dtype=np.int64)
    for row in range(count):
        entries.append(ids=f"o{row}", locations=f"o{row}.jpg", sha256=f"{row:064x}", sizes=1, mtimes_ns=1,
                       phash=f"{int(hashes[row]):016x}", artists="", titles="", problems="")
    started = time.perf_counter()
    save_index(folder, "synthetic", folder, entries, vector_file, vectors, np.ones(count, np.float32))
    return time.perf_counter() - started


def variant_queries(vectors: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """Unit queries near stored rows (cosine ~0.9 to their source), as a variant is near its original."""
    rng = np.random.default_rng(seed)
    sources = np.asarray(vectors[np.sort(rng.choice(len(vectors), size=count, replace=False))], dtype=np.float32)
    noisy = sources + 0.5 * synthetic_vectors(rng, count, vectors.shape[1])
    return np.ascontiguousarray(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))


def read_bandwidth_gb_s(megabytes: int = 1024) -> float:
    """The memory-bandwidth floor of a scan: GB/s of one core summing an array in RAM (best of 3)."""
    array = np.ones(megabytes * 2**20 // 8, dtype=np.float64)
    best = min(_seconds(array.sum) for _ in range(3))
    return array.nbytes / best / 1e9


def _seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def bench_synthetic(work: Path, count: int, dim: int, queries: int) -> dict:
    """One core (faiss threads 1): exact against the stored compact index, latency and recall@10."""
    folder = work / f"synthetic-{count}-{dim}"
    built = folder / "build_s.json"  # a rerun in the same --work measures the index already written
    if not built.exists() or load_index(folder, verify_files=False)[0] is None:
        built.write_text(json.dumps(synthetic_index(folder, count, dim)))
    build_s = json.loads(built.read_text())
    load_verified = _seconds(lambda: load_index(folder, verify_files=True))
    started = time.perf_counter()
    index, problem = load_index(folder, verify_files=False)
    load_quick = time.perf_counter() - started
    assert problem is None and index is not None
    faiss.omp_set_num_threads(1)
    query_units = variant_queries(index.vectors, queries)
    row = {"n": count, "dim": dim, "write_with_compact_s": build_s, "load_verified_s": load_verified,
           "load_s": load_quick, "compact": index.compact is not None, "vector_gb": index.vectors.nbytes / 1e9}
    top_inner_products(query_units[:2], index.vectors, SHORTLIST)  # the first touch pages the file in
    exact_rows, times = [], []
    for q in query_units:
        times.append(_seconds(lambda: exact_rows.append(top_inner_products(q[None, :], index.vectors, 10)[1][0])))
    row["exact_1query"] = percentiles(times)
    if index.compact is not None:
        found, times = [], []
        for q in query_units:
            times.append(_seconds(lambda: found.append(
                top_inner_products(q[None, :], index.vectors, SHORTLIST, index.compact)[1][0][:10])))
        row["compact_1query"] = percentiles(times)
        row["recall_at_10"] = recall_at_k(np.array(exact_rows), np.array(found))
        row["ann_mb"] = (folder / ANN).stat().st_size / 1e6
    row["bandwidth_gb_s"] = read_bandwidth_gb_s()
    row["scan_floor_ms"] = 1000 * index.vectors.nbytes / 1e9 / row["bandwidth_gb_s"]
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def bench_real(work: Path, count: int, queries: int) -> dict:
    import torch

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
    row["peak_rss_mb"] = peak_rss_mb()
    return row


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


def synthetic_size(text: str) -> tuple[int, int]:
    count, _, dim = text.partition(":")
    return int(count), int(dim or DIM)


def record_synthetic(rows: list[dict]) -> None:
    columns = ["originals", "dim", "exact p50 ms", "compact p50 ms", "compact p95 ms", "recall@10", "build s",
               "vectors GB", "read GB/s", "scan floor ms"]
    cells = [[f"{r['n']:,}", r["dim"], f"{r['exact_1query']['p50_ms']:.1f}",
              f"{r['compact_1query']['p50_ms']:.1f}" if r["compact"] else "exact",
              f"{r['compact_1query']['p95_ms']:.1f}" if r["compact"] else "exact", f"{r.get('recall_at_10', 1.0):.3f}",
              f"{r['write_with_compact_s']:.0f}", f"{r['vector_gb']:.2f}", f"{r['bandwidth_gb_s']:.1f}",
              f"{r['scan_floor_ms']:.0f}"] for r in rows]
    record("search", columns, cells, note="one core (faiss threads 1), one query at a time, shortlist 100; queries "
           "are stored rows plus noise (cosine ~0.9); recall@10 against the exact search")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=synthetic_size, nargs="*", default=[(100_000, DIM)],
                        help="COUNT[:DIM] synthetic indexes (DIM default: the model's embedding width)")
    parser.add_argument("--real", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-search-"))
    rows = []
    for count, dim in args.synthetic:
        rows.append(bench_synthetic(work, count, dim, args.queries))
        print(json.dumps({"synthetic": rows[-1]}), flush=True)
    if rows:
        record_synthetic(rows)
    if args.real:
        print(json.dumps({"real": bench_real(work, args.real, min(args.queries, 20))}), flush=True)


if __name__ == "__main__":
    main()
