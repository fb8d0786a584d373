"""Which originals does a query image most resemble? (`artsim search`)

`search_index` answers many queries against a persistent index (artsim.index; artsim.app.indexes
finds it): queries are embedded in batches and ranked `--by` model, phash or fused. `search` is the
per-query path it replaced, which reads every candidate again (kept as the reference the index's
results and speed are checked against: tests/app/test_search.py, bench/search.py).

The head is not a distance, so scoring a query against every candidate with it costs one
head pass per candidate; instead candidates are shortlisted by cosine similarity of trunk
embeddings and only the shortlist is re-ranked by the head. Candidate embeddings are
computed once per image content and model, and cached under $ARTSIM_CACHE/embeddings.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from artsim.app.api import ImageInput, LoadedImage, Scorer, UnusableImage, UserError, open_image
from artsim.app.indexes import OpenIndex
from artsim.evaluate.peers import phash_bits
from artsim.evaluate.verdict import evidence_text
from artsim.index.collection import IMAGE_SUFFIXES
from artsim.index.query import IndexSearch, Ranked
from artsim.core.cache_dirs import user_cache_root
from artsim.learn.features import embed_images
from artsim.core.images import ImageFile, ImageRejected, file_hash
from artsim.core.shards import manifest_images
from artsim.learn.models import EMBEDDING_DIM
from artsim.core.vector_files import read_vector, write_vector
from artsim.core import layout

log = logging.getLogger(__name__)

DEFAULT_SHORTLIST = 100
EMBED_BATCH = 16


@dataclass(frozen=True)
class Candidate:
    path: ImageFile  # a loose file, or an ingested original inside its shard
    artist: str
    title: str
    id: str = ""  # the manifest's id, or a digest of the path under --originals: [0-9a-f]{16}, safe in a URL


@dataclass(frozen=True)
class Hit:
    id: str
    rank: int
    score: float
    cosine: float
    artist: str
    title: str
    path: str
    # At or above the model's threshold at 90% precision (the shipped thresholds); None without them.
    likely_derived: bool | None = None

    def as_dict(self) -> dict:
        return dict(vars(self))


# --- candidates ----------------------------------------------------------------------------

def workspace_candidates(workspace: Path) -> list[Candidate]:
    """The workspace's ingested originals (data/ingested/manifest.parquet)."""
    manifest_path = workspace / layout.INGESTED / layout.MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"{manifest_path} is missing: run `dvc repro` in {workspace}, or pass --originals DIR")
    manifest = pd.read_parquet(manifest_path)
    blank = [""] * len(manifest)
    return [Candidate(image, _text(artist), _text(title), _text(image_id))
            for image, artist, title, image_id in zip(manifest_images(manifest, workspace / layout.INGESTED), manifest.get("artist", blank),
                                                      manifest.get("title", blank), manifest.get("id", blank))]


def folder_candidates(folder: Path) -> list[Candidate]:
    """Every image file under `folder` (by suffix), in a stable order; artist unknown, title = file stem."""
    if not folder.is_dir():
        raise UserError(f"--originals {folder}: not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise UserError(f"--originals {folder}: no image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [Candidate(p, "", p.stem, hashlib.sha256(p.relative_to(folder).as_posix().encode()).hexdigest()[:16]) for p in paths]


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


# --- the embedding cache -------------------------------------------------------------------

class EmbeddingCache:
    """One .npy per (model, image content); verified on read (shape, dtype, finite), rebuilt if damaged."""

    def __init__(self, root: Path, model_fingerprint: str) -> None:
        self.folder = root / model_fingerprint[:24]

    def _path(self, content: str) -> Path:
        return self.folder / content[:2] / f"{content}.npy"

    def get(self, content: str) -> np.ndarray | None:
        path = self._path(content)
        vector, problem = read_vector(path, np.float32, EMBEDDING_DIM)
        if problem:
            log.warning("damaged cached embedding %s (%s): computed again", path, problem)
        return vector

    def put(self, content: str, vector: np.ndarray) -> None:
        write_vector(self._path(content), vector, np.float32)


def default_embedding_cache(scorer: Scorer) -> EmbeddingCache:
    return EmbeddingCache(user_cache_root() / "embeddings", scorer.fingerprint)


def candidate_embeddings(scorer: Scorer, candidates: Sequence[Candidate], cache: EmbeddingCache
                         ) -> tuple[np.ndarray, dict[int, str]]:
    """(n, 2048) embeddings in candidate order, and the positions that could not be used, with why."""
    embeddings = np.zeros((len(candidates), EMBEDDING_DIM), dtype=np.float32)
    unusable: dict[int, str] = {}
    missing: list[tuple[int, str]] = []
    for position, candidate in enumerate(candidates):
        try:
            content = file_hash(candidate.path)
        except OSError as exc:
            unusable[position] = f"unreadable ({exc.strerror or exc})"
            continue
        except ImageRejected as exc:  # a shard shorter than its manifest says
            unusable[position] = str(exc)
            continue
        cached = cache.get(content)
        if cached is None:
            missing.append((position, content))
        else:
            embeddings[position] = cached
    if missing:
        computed, failed = embed_images(scorer.model.trunk, [candidates[p].path for p, _ in missing], scorer.image_size,
                                        EMBED_BATCH, scorer.device, desc="embed candidates")
        for row, (position, content) in enumerate(missing):
            if row in failed:
                unusable[position] = failed[row]
                continue
            embeddings[position] = computed[row].numpy()
            cache.put(content, embeddings[position])
    for position, why in unusable.items():
        log.warning("candidate %s left out: %s", candidates[position].path, why)
    return embeddings, unusable


# --- ranking -------------------------------------------------------------------------------

def cosine_similarities(query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    query_unit = query / max(float(np.linalg.norm(query)), 1e-12)
    norms = np.maximum(np.linalg.norm(candidates, axis=1), 1e-12)
    return candidates @ query_unit / norms


def rank_candidates(scorer: Scorer, query_embedding: np.ndarray, embeddings: np.ndarray, usable: np.ndarray,
                    shortlist: int) -> list[tuple[int, float, float]]:
    """(position, head score, cosine) of the shortlisted candidates, best head score first.

    Ties keep cosine order (a stable sort), so the result does not depend on the platform's sort.
    """
    cosine = np.where(usable, cosine_similarities(query_embedding, embeddings), -np.inf)
    order = np.argsort(-cosine, kind="stable")[:min(shortlist, int(usable.sum()))]
    if len(order) == 0:
        return []
    scores = scorer.head_scores(torch.as_tensor(query_embedding[None, :]), torch.as_tensor(embeddings[order]))
    reranked = np.argsort(-scores, kind="stable")
    return [(int(order[i]), float(scores[i]), float(cosine[order[i]])) for i in reranked]


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    candidates: int
    skipped: dict[str, str]  # path of each candidate left out -> why
    threshold_note: str = ""  # what marks a hit (the threshold, its precision, its pairs), or why none does

    def as_dict(self) -> dict:
        return {"candidates": self.candidates, "results": [hit.as_dict() for hit in self.hits],
                "skipped": [{"path": path, "reason": why} for path, why in self.skipped.items()],
                "threshold_note": self.threshold_note}


def threshold_note(scorer: Scorer) -> str:
    """The legend of the marked hits: the lowest-precision threshold with its evidence, or why there is none."""
    lowest = scorer.verdict(-float("inf"))  # below every threshold: judged by the lowest one
    if lowest.derived is None:
        return lowest.text
    return (f"* score >= {lowest.threshold:.3f}: derived likely (the threshold at {lowest.precision:.0%} precision on "
            f"{evidence_text(scorer.thresholds)})")


def search(scorer: Scorer, query: ImageInput, candidates: Sequence[Candidate], top_k: int = 5,
           shortlist: int = DEFAULT_SHORTLIST, cache: EmbeddingCache | None = None) -> SearchResult:
    """The `top_k` candidates most similar to `query` by the model, best first; unusable candidates are
    left out and listed, never fatal."""
    if top_k < 1 or shortlist < 1:
        raise UserError("--top-k and --shortlist must be at least 1")
    query_embedding = scorer.embed(query)[0]  # an unusable query fails before any candidate is embedded
    embeddings, unusable = candidate_embeddings(scorer, candidates, cache or default_embedding_cache(scorer))
    usable = np.ones(len(candidates), dtype=bool)
    usable[list(unusable)] = False
    ranked = rank_candidates(scorer, query_embedding, embeddings, usable, max(shortlist, top_k))[:top_k]
    return SearchResult(hits_of(ranked, candidates, scorer), len(candidates),
                        {str(candidates[p].path): why for p, why in sorted(unusable.items())}, threshold_note(scorer))


def hits_of(ranked: Sequence[tuple[int, float, float]], candidates: Sequence[Candidate], scorer: Scorer) -> list[Hit]:
    """The ranked candidates as hits, each marked by the model's verdict (at or above the 90% threshold)."""
    return [Hit(candidates[p].id, rank, score, cosine, candidates[p].artist, candidates[p].title, str(candidates[p].path),
                scorer.verdict(score).derived)
            for rank, (p, score, cosine) in enumerate(ranked, start=1)]


# --- many queries against an index ---------------------------------------------------------

@dataclass(frozen=True)
class QueryResult:
    query: str
    hits: list[Hit]
    candidates: int
    error: str | None = None  # the query could not be used: it has no hit

    def as_dict(self) -> dict:
        found = {"query": self.query, "candidates": self.candidates, "results": [hit.as_dict() for hit in self.hits]}
        return found | ({"error": self.error} if self.error else {})


def search_index(scorer: Scorer, opened: OpenIndex, queries: Sequence[str | LoadedImage], top_k: int = 5,
                 shortlist: int = DEFAULT_SHORTLIST, by: str = "model", searcher: IndexSearch | None = None
                 ) -> Iterator[QueryResult]:
    """One result per query (a path, or an image already decoded: an upload), in query order; an unusable
    query gets its error, never stops the others. `searcher`: one made before for this index (a server)."""
    if top_k < 1 or shortlist < 1:
        raise UserError("--top-k and --shortlist must be at least 1")
    searcher = searcher if searcher is not None else IndexSearch(opened.index)
    for start in tqdm(range(0, len(queries), EMBED_BATCH), desc="search", unit="batch", disable=None if len(queries) > EMBED_BATCH else True):
        yield from _search_batch(scorer, opened, searcher, queries[start:start + EMBED_BATCH], top_k, shortlist, by)


def _search_batch(scorer: Scorer, opened: OpenIndex, searcher: IndexSearch, queries: Sequence[str | LoadedImage], top_k: int,
                  shortlist: int, by: str) -> Iterator[QueryResult]:
    loaded, errors = {}, {}
    for position, query in enumerate(queries):
        try:
            loaded[position] = open_image(query)
        except UnusableImage as exc:
            errors[position] = str(exc)
    positions = sorted(loaded)
    embeddings = scorer._embed_loaded([loaded[p] for p in positions]).numpy() if positions else np.zeros((0, EMBEDDING_DIM), np.float32)
    shortlists = dict(zip(positions, searcher.shortlists(embeddings, max(shortlist, top_k))))
    embedding_of = dict(zip(positions, embeddings))
    count = len(opened.index.entries)
    for position, query in enumerate(queries):
        if position in errors:
            yield QueryResult(_query_name(query), [], count, errors[position])
            continue
        ranked = _ranked(scorer, searcher, loaded[position], embedding_of[position], shortlists[position], top_k, by)
        yield QueryResult(_query_name(query), [_hit(scorer, opened, rank, r) for rank, r in enumerate(ranked, start=1)], count)


def _query_name(query: str | LoadedImage) -> str:
    return query.name if isinstance(query, LoadedImage) else str(query)


def search_json(result: QueryResult, skipped: dict[str, str], legend: str) -> dict:
    """One query's result as `artsim search --json` prints it (and POST /search returns it)."""
    return result.as_dict() | {"threshold_note": legend, "skipped": [{"path": p, "reason": w} for p, w in skipped.items()]}


def _ranked(scorer: Scorer, searcher: IndexSearch, query, embedding: np.ndarray, shortlisted: tuple[np.ndarray, np.ndarray],
            top_k: int, by: str) -> list[Ranked]:
    if by == "phash":
        return searcher.by_phash(phash_bits(query.image), embedding, top_k)
    model_ranked = searcher.by_model(embedding, *shortlisted, scorer.head_scores)
    if by == "fused":
        return searcher.fused(model_ranked, phash_bits(query.image), embedding, top_k)
    return model_ranked[:top_k]


def _hit(scorer: Scorer, opened: OpenIndex, rank: int, ranked: Ranked) -> Hit:
    entries = opened.index.entries
    return Hit(entries.ids[ranked.row], rank, ranked.score, ranked.cosine, entries.artists[ranked.row], entries.titles[ranked.row],
               str(opened.root / entries.locations[ranked.row]), scorer.verdict(ranked.score).derived)


def index_skipped(opened: OpenIndex) -> dict[str, str]:
    """Originals of the index that have no vector (unreadable, not an image), with why."""
    entries = opened.index.entries
    return {str(opened.root / location): problem for location, problem in zip(entries.locations, entries.problems) if problem}
