"""`bench/search.py --real COUNT`: a collection of COUNT images on disk indexed and searched the way a user does it,
end to end, with the app's own functions:

- the collection: bench/dvc_scale.py's procedural originals (without its unrelated variants), linked into one
  folder; indexed by what `artsim index FOLDER --out INDEX` runs (collection_at, index_collection): the first build,
  then +ADDED originals, then a call with nothing changed (each call's report says how many it embedded);
- the index opened as `artsim search --index INDEX` opens it (open_index: the files verified) and queried as it
  queries (searcher_for, decoded_queries, the model's default ranking): one query at a time (p50/p95), then all at
  once (ms per query);
- the queries: originals spread over the collection, each altered by one of evaluate's held-out alterations in
  turn (artsim.core.alterations.EVALUATION; this corpus has no variant derived from its originals) and saved as
  a JPEG file; whether each query's source is found first, and in the top DEFAULT_TOP_K;
- recall@10 of the index's cosine shortlist (the compact index past artsim.index.ann.EXACT_LIMIT originals, else
  the exact search) against the exact search over the same embeddings;
- the per-query path the index replaced (tests/support/search_oracle.py: every original hashed and its cached
  embedding read per query), its cache warmed from the index's own embeddings; seconds a query at 20,000, so
  only PER_QUERY_CAP queries are timed, and whether its first hit is the index's;
- memory: the process's RSS before the build (model loaded, corpus made), its peak through the first build alone
  (the peak reset before it; memory must not grow with COUNT: the build writes its vectors into a memory map),
  through what follows on the user's path (updates, opening, searches), and through the bench's own checks.

The model is built in code (the siamese at the embedded default's image size, untrained: its costs are a
trained one's, its rankings are not a trained one's, so "found first" checks the path, not the model's quality).
"""
from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import artsim
from artsim.app.api import Scorer
from artsim.app.indexes import (
    collection_at,
    decoded_queries,
    default_ranking,
    index_collection,
    open_index,
    searcher_for,
)
from artsim.core.alterations import EVALUATION
from artsim.core.images import load_rgb
from artsim.describe.texture import HARALICK_FEATURES
from artsim.index import DEFAULT_TOP_K
from artsim.index.ann import EXACT_LIMIT, recall_at_k
from artsim.index.query import shortlist_rows, unit_rows
from artsim.index.search import EMBED_BATCH
from artsim.learn.models import NORMALISATION, SiameseRegressor, save_weights
from artsim.params import DescribeParams, ScoreWeights, parse_params
from artsim.score.scorer import DescriptorScorer
from artsim.score.similarity import TextureStats
from bench.dvc_scale import build_dataset
from tests.support.search_oracle import EmbeddingCache, search

ADDED = 100  # originals added after the first build
SIDE = 512  # pixels on the long side of an original
PER_QUERY_CAP = 3  # queries timed on the per-query path (each hashes every original and reads its embedding)
RECALL_K = 10
REPO = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    """The process's peak resident memory since it started or since reset_peak_rss (Linux: VmHWM)."""
    return _status_mb("VmHWM") if Path("/proc/self/status").exists() else (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def rss_mb() -> float:
    """The process's resident memory now (not its peak)."""
    return _status_mb("VmRSS")


def reset_peak_rss() -> None:
    """Start peak_rss_mb afresh from the memory now (Linux), so a step's peak is not an earlier step's."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith(f"{field}:"))
    return int(kib) / 1024


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"p50_ms": 1000 * float(np.median(ordered)),
            "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}


def originals(work: Path, count: int) -> list[Path]:
    """`count` procedural originals (dvc_scale's), made once in `work` and reused by a rerun."""
    source, _none = build_dataset(work / f"originals-only-{count}", count, SIDE, strengths=())
    return sorted(source.rglob("*.jpg"))


def link_into(folder: Path, paths: list[Path]) -> None:
    for path in paths:
        (folder / path.name).symlink_to(path)


def query_files(folder: Path, sources: list[Path]) -> list[Path]:
    """Each source altered by the next of evaluate's held-out alterations, saved as a JPEG (as a user's file)."""
    folder.mkdir(parents=True, exist_ok=True)
    alterations = list(EVALUATION.values())
    written = []
    for number, source in enumerate(sources):
        alteration = alterations[number % len(alterations)]
        path = folder / f"{number:04d}-{alteration.name}-{source.name}"
        if not path.exists():
            alteration.apply(load_rgb(source)).save(path, quality=95)
        written.append(path)
    return written


def bench_real(work: Path, count: int, queries: int) -> dict:
    """The figures of one end-to-end run at `count` originals (see the module's docstring)."""
    torch.manual_seed(0)
    scorer = untrained_model(work)
    paths = originals(work, count + ADDED)
    corpus, index_folder = work / f"collection-{count}", work / f"index-{count}"
    for stale in (corpus, index_folder):  # every run builds from nothing
        shutil.rmtree(stale, ignore_errors=True)
    corpus.mkdir()
    link_into(corpus, paths[:count])
    row: dict[str, Any] = {"n": count, "added": ADDED, "peak_rss_before_build_mb": peak_rss_mb()}
    reset_peak_rss()
    row["rss_before_build_mb"] = rss_mb()
    steps: dict[str, dict] = {}

    def build(label: str) -> None:
        say(f"index: {label} ({len(list(corpus.iterdir())):,} originals)")
        seconds, opened = timed(lambda: index_collection(scorer, collection_at(corpus), index_folder))
        steps[label] = {"seconds": seconds, **{key: value for key, value in opened.report.as_dict().items()
                                                if key != "skipped"}, "skipped": len(opened.report.skipped)}
        say(f"index: {label} took {seconds:.1f} s: {json.dumps(steps[label])}")

    build("first")
    row["peak_rss_build_mb"] = peak_rss_mb()
    reset_peak_rss()
    link_into(corpus, paths[count:count + ADDED])
    build("plus_added")
    build("unchanged")
    row["build"] = steps
    row["load_s"], opened = timed(lambda: open_index(scorer, index_folder, None, work))
    row["compact"], row["exact_limit"] = opened.index.compact is not None, EXACT_LIMIT
    searcher, ranking = searcher_for(scorer, opened), default_ranking(scorer)
    row["ranking"] = ranking
    sources = [paths[i] for i in np.linspace(0, count - 1, queries).astype(int)]
    asked = query_files(work / f"queries-{count}", sources)
    say(f"search: {len(asked)} queries one at a time, by {ranking}")
    one, hits = [], []
    for path in asked:
        seconds, results = timed(lambda: list(searcher.search(decoded_queries([str(path)]), DEFAULT_TOP_K, ranking)))
        one.append(seconds)
        hits.append([hit.id for hit in results[0].hits])
    row["index_query"] = percentiles(one)
    seconds, _ = timed(lambda: list(searcher.search(decoded_queries(map(str, asked)), DEFAULT_TOP_K, ranking)))
    row["index_batched_ms_per_query"] = 1000 * seconds / len(asked)
    row["peak_rss_search_mb"] = peak_rss_mb()  # updates, opening, searches: the user's path after the first build
    reset_peak_rss()
    row["found"] = found_sources(asked, sources, hits)
    row["recall_at_10"] = shortlist_recall(scorer, opened.index, asked)
    row["per_query_path"] = per_query_path(scorer, work, corpus, opened.index, asked[:PER_QUERY_CAP], hits)
    row["peak_rss_checks_mb"] = peak_rss_mb()  # the bench's own checks: recall, the per-query path
    return row


def found_sources(asked: list[Path], sources: list[Path], hits: list[list[str]]) -> dict:
    """The share of queries whose source is the first hit and is among the hits, overall and per alteration."""
    alterations = list(EVALUATION)
    by: dict[str, list[tuple[bool, bool]]] = {}
    for number, (source, ids) in enumerate(zip(sources, hits)):
        by.setdefault(alterations[number % len(alterations)], []).append((ids[:1] == [source.name], source.name in ids))
    every = [outcome for outcomes in by.values() for outcome in outcomes]

    def shares(outcomes: list[tuple[bool, bool]]) -> dict:
        return {"first": float(np.mean([f for f, _ in outcomes])), "top_k": float(np.mean([t for _, t in outcomes])),
                "queries": len(outcomes)}
    return {"all": shares(every), "by_alteration": {name: shares(outcomes) for name, outcomes in by.items()},
            "top_k": DEFAULT_TOP_K, "queries": len(asked)}


def shortlist_recall(scorer, index, asked: list[Path]) -> float:
    """recall@10 of the index's cosine shortlist (its compact index when it has one) against the exact search."""
    units = unit_rows(np.concatenate([scorer.embed([str(path) for path in asked[start:start + EMBED_BATCH]])
                                      for start in range(0, len(asked), EMBED_BATCH)]))  # as a search batches them
    usable = index.usable
    searched = shortlist_rows(units, index.vectors, RECALL_K, usable, index.compact)
    exact = shortlist_rows(units, index.vectors, RECALL_K, usable, None)
    return recall_at_k(np.array([rows for rows, _ in exact]), np.array([rows for rows, _ in searched]))


def per_query_path(scorer, work: Path, corpus: Path, index, asked: list[Path], hits: list[list[str]]) -> dict:
    """The per-query search the index replaced, on `asked`, its embedding cache warm (filled from the index)."""
    cache = EmbeddingCache(work / f"embedding-cache-{len(index.entries)}", scorer.fingerprint)
    entries = index.entries
    for row in np.flatnonzero(index.usable):
        cache.put(entries.sha256[row], np.asarray(index.vectors[row]) * index.norms[row])
    candidates = collection_at(corpus).originals
    say(f"per-query path: {len(asked)} queries over {len(candidates):,} originals (each reads them all)")
    search(scorer, str(asked[0]), candidates, cache=cache)  # the first pass pages the cache's files in
    times, same_first = [], []
    for path, index_hits in zip(asked, hits):
        seconds, result = timed(lambda: search(scorer, str(path), candidates, cache=cache))
        times.append(seconds)
        same_first.append([hit.id for hit in result.hits[:1]] == index_hits[:1])
    return {**percentiles(times), "queries": len(asked), "same_first_hit_as_index": float(np.mean(same_first))}


def cells(row: dict) -> list[list[str]]:
    """The docs' table of one run: step, figure, note."""
    build, found, per_query = row["build"], row["found"], row["per_query_path"]
    first = build["first"]
    searched = ("the compact index" if row["compact"] else
                f"the exact search (up to {row['exact_limit']:,} originals)")
    return [
        ["first build", f"{first['seconds']:.0f} s", f"{row['n']:,} originals embedded, "
         f"{row['n'] / first['seconds']:.1f} images/s"],
        [f"+{row['added']} originals", f"{build['plus_added']['seconds']:.1f} s",
         f"{build['plus_added']['embedded']} embedded, {build['plus_added']['unchanged']:,} not read"],
        ["call with nothing changed", f"{build['unchanged']['seconds']:.1f} s",
         f"{build['unchanged']['embedded']} embedded, {build['unchanged']['hashed']} read, nothing written"],
        ["open the index (files verified)", f"{row['load_s']:.2f} s", f"{row['n'] + row['added']:,} originals"],
        ["query, one at a time", "p50 {p50_ms:.0f} ms, p95 {p95_ms:.0f} ms".format(**row["index_query"]),
         f"{found['queries']} altered originals as JPEG files, decoded, embedded, ranked by {row['ranking']}"],
        ["queries in one call", f"{row['index_batched_ms_per_query']:.0f} ms a query", "batches of 16"],
        ["per-query path it replaced", f"p50 {per_query['p50_ms'] / 1000:.1f} s",
         f"{per_query['queries']} queries only (each hashes every original and reads its cached embedding); "
         f"first hit the index's in {per_query['same_first_hit_as_index']:.0%}"],
        ["recall@10 of the shortlist", f"{row['recall_at_10']:.3f}",
         f"against the exact search; searched by {searched}"],
        ["source found first", f"{found['all']['first']:.1%}",
         f"in the top {found['top_k']}: {found['all']['top_k']:.1%} (an untrained model; per alteration: "
         "figures.found)"],
        ["peak RSS through the first build", f"{row['peak_rss_build_mb']:.0f} MB",
         f"{row['rss_before_build_mb']:.0f} MB before it (model loaded); after it (updates, opening, searches) "
         f"{row['peak_rss_search_mb']:.0f} MB at most"],
    ]


def untrained_model(work: Path) -> Scorer:
    """The model folder the pipeline ships, from an untrained siamese shaped as params.yaml's (the embedded
    default's image size, head and embedding width); made once in `work`."""
    folder = work / "model"
    if not (folder / "model.safetensors").exists():
        shape = parse_params(yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))).siamese
        folder.mkdir(parents=True, exist_ok=True)
        model = SiameseRegressor(head_hidden=shape.head_hidden, embedding_dim=shape.embedding_dim)
        model.start_at(0.5)
        save_weights(model.eval(), folder / "model.safetensors")
        (folder / "card.json").write_text(json.dumps(
            {"image_size": shape.image_size, "head_hidden": shape.head_hidden, "normalisation": NORMALISATION}))
        stats = TextureStats(mean=np.zeros(HARALICK_FEATURES), std=np.ones(HARALICK_FEATURES))
        DescriptorScorer(DescribeParams(), ScoreWeights(), stats).save(folder / "descriptor_score.json")
    return artsim.load(folder)
