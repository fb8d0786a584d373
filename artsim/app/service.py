"""What `artsim serve` holds in memory: the model, the descriptor scorer and the collection,
loaded once at startup, and the limits every request is held to.

`ServiceState` is the seam between the HTTP layer (artsim.app.serve) and the model: `compare`
and each search method (`searches`, keyed by the `by` of POST /search) are plain callables, so
another search (an index) or a verdict plugs in by handing the state other callables, without
touching the routes. Search here shortlists by embedding cosine and re-ranks by the head, as
`artsim search` does, over embeddings computed (or read from the cache) once at startup.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artsim.app.api import WEIGHTS_FILE, LoadedImage, Scorer, compare_payload, load
from artsim.app.search import (DEFAULT_SHORTLIST, Candidate, SearchResult, candidate_embeddings, default_embedding_cache,
                               folder_candidates, hits_of, rank_candidates, workspace_candidates)
from artsim.core import layout
from artsim.core.images import MAX_FILE_BYTES, ImageFile
from artsim.params import IngestParams
from artsim.score.scorer import FILE_NAME as DESCRIPTOR_SCORE_FILE

# An upload is held in memory (and spooled) per admitted request: a web limit well under ingest's
# per-file 256 MiB, which is meant for a trusted batch read one file at a time.
DEFAULT_MAX_IMAGE_BYTES = min(MAX_FILE_BYTES, 32 * 1024 * 1024)
MAX_TOP_K = 100

CompareFn = Callable[[LoadedImage, LoadedImage, tuple[str, str]], dict[str, Any]]
SearchFn = Callable[[LoadedImage, int], dict[str, Any]]


@dataclass(frozen=True)
class ServiceLimits:
    """Per request: bytes (checked from Content-Length, then while the body streams in) and pixels
    (from the image header, before decoding); per server: requests computing at once, and waiting."""

    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = IngestParams.model_fields["max_pixels"].default
    max_concurrent: int = 2
    max_queue: int = 8

    def __post_init__(self) -> None:
        for name in ("max_image_bytes", "max_pixels", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be at least 0, got {self.max_queue}")

    @property
    def max_request_bytes(self) -> int:
        """Two images (POST /compare) and the multipart framing and small fields around them."""
        return 2 * self.max_image_bytes + 64 * 1024


@dataclass(frozen=True)
class FileStamps:
    """Size and mtime of the files the state was loaded from: changed or gone since = stale."""

    stamps: dict[str, tuple[int, int] | None]

    @classmethod
    def of(cls, paths: Sequence[Path]) -> "FileStamps":
        return cls({str(path): _stamp(path) for path in paths})

    def changed(self) -> list[str]:
        """The names (not the paths: /health may be reachable by others) of the files changed or gone."""
        return [Path(path).name for path, stamp in self.stamps.items() if _stamp(Path(path)) != stamp]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


@dataclass
class Collection:
    """The originals a query is searched among, with their embeddings computed once."""

    candidates: list[Candidate]
    embeddings: np.ndarray
    usable: np.ndarray
    skipped: dict[str, str]
    by_id: dict[str, ImageFile] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {candidate.id: candidate.path for candidate in self.candidates if candidate.id}

    @classmethod
    def embedded(cls, scorer: Scorer, candidates: Sequence[Candidate]) -> "Collection":
        embeddings, unusable = candidate_embeddings(scorer, candidates, default_embedding_cache(scorer))
        usable = np.ones(len(candidates), dtype=bool)
        usable[list(unusable)] = False
        return cls(list(candidates), embeddings, usable,
                   {str(candidates[p].path): why for p, why in sorted(unusable.items())})

    def model_search(self, scorer: Scorer, shortlist: int = DEFAULT_SHORTLIST) -> SearchFn:
        """The search of `artsim search`: cosine shortlist, re-ranked by the head; the same JSON."""
        def search(query: LoadedImage, top_k: int) -> dict[str, Any]:
            ranked = rank_candidates(scorer, scorer.embed(query.image)[0], self.embeddings, self.usable,
                                     max(shortlist, top_k))[:top_k]
            return SearchResult(hits_of(ranked, self.candidates), len(self.candidates), self.skipped).as_dict()
        return search


@dataclass
class ServiceState:
    scorer: Scorer
    compare: CompareFn
    searches: Mapping[str, SearchFn]  # POST /search's `by` -> how
    originals: Mapping[str, ImageFile]  # id -> image, for GET /original/{id} and compare's b_original
    sources: FileStamps

    def search(self, image: LoadedImage, top_k: int, by: str) -> dict[str, Any]:
        return {"by": by, **self.searches[by](image, top_k)}

    def health(self) -> dict[str, Any]:
        changed = self.sources.changed()
        return {"status": "ok", "model_fingerprint": self.scorer.fingerprint, "index_size": len(self.originals),
                "stale": bool(changed), "changed": changed, "search_by": sorted(self.searches)}


def build_state(scorer: Scorer, collection: Collection, watched: Sequence[Path]) -> ServiceState:
    """The default wiring: the CLI's compare payload, search by the model."""
    def compare(a: LoadedImage, b: LoadedImage, names: tuple[str, str]) -> dict[str, Any]:
        return compare_payload(scorer, a, b, names)

    model_files = [scorer.model_dir / WEIGHTS_FILE, scorer.model_dir / DESCRIPTOR_SCORE_FILE]
    return ServiceState(scorer, compare, {"model": collection.model_search(scorer)}, collection.by_id,
                        FileStamps.of([*model_files, *watched]))


def load_state(workspace: Path, model: Path | None = None, index: Path | None = None) -> ServiceState:
    """The model of `--model` (default: the workspace's) and the collection of `--index` (a folder of
    images, until an index format exists; default: the workspace's ingested originals)."""
    scorer = load(model if model is not None else workspace)
    if index is not None:
        candidates, watched = folder_candidates(index), [index]
    else:
        candidates, watched = workspace_candidates(workspace), [workspace / layout.INGESTED / layout.MANIFEST]
    return build_state(scorer, Collection.embedded(scorer, candidates), watched)
