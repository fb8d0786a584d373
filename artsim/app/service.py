"""What `artsim serve` holds in memory: the model, the descriptor scorer and the index of the collection
(artsim.index), loaded once at startup, and the limits every request is held to.

`ServiceState` is the seam between the HTTP layer (artsim.app.serve) and the model: `compare`
and each search method (`searches`, keyed by the `by` of POST /search: model, phash, fused) are plain
callables over the index, the very search of `artsim search --json` (artsim.app.search.search_index),
so the routes never rank anything themselves. Originals are named by the index's entry ids only.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artsim.app.api import WEIGHTS_FILE, LoadedImage, Scorer, compare_payload, load
from artsim.app.indexes import OpenIndex, default_ranking, open_index
from artsim.app.search import DEFAULT_SHORTLIST, index_skipped, search_index, search_json, threshold_note
from artsim.core import layout
from artsim.core.images import MAX_FILE_BYTES, ImageFile
from artsim.index import RANKINGS
from artsim.index.build import image_at
from artsim.index.query import IndexSearch
from artsim.index.store import MANIFEST as INDEX_MANIFEST, NORMS, VECTORS
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
class ServiceState:
    scorer: Scorer
    compare: CompareFn
    searches: Mapping[str, SearchFn]  # POST /search's `by` -> how
    opened: OpenIndex  # the index searched; its entry ids are GET /original/{id}'s and compare's b_original
    sources: FileStamps
    default_by: str = RANKINGS[0]
    row_of_id: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.row_of_id = {identifier: row for row, identifier in enumerate(self.opened.index.entries.ids)}

    def search(self, image: LoadedImage, top_k: int, by: str) -> dict[str, Any]:
        return {"by": by, **self.searches[by](image, top_k)}

    def original(self, image_id: str) -> ImageFile | None:
        """The original of an index entry id (None: no such entry); where it lies comes from the index only."""
        row = self.row_of_id.get(image_id)
        return None if row is None else image_at(self.opened.root, self.opened.index.entries.locations[row])

    def health(self) -> dict[str, Any]:
        changed = self.sources.changed()
        index_model = self.opened.index.model
        return {"status": "ok", "model_fingerprint": self.scorer.fingerprint, "index_size": len(self.opened.index.entries),
                "index_model_fingerprint": index_model, "index_model_match": index_model == self.scorer.fingerprint,
                "stale": bool(changed), "changed": changed, "search_by": sorted(self.searches), "default_by": self.default_by}


def index_searches(scorer: Scorer, opened: OpenIndex, shortlist: int = DEFAULT_SHORTLIST) -> dict[str, SearchFn]:
    """One search per ranking, each the search of `artsim search --json --by X` for one query (search_json)."""
    searcher = IndexSearch(opened.index)  # built once: its usable mask and pHashes are per index, not per request
    skipped, legend = index_skipped(opened), threshold_note(scorer)

    def ranked_by(by: str) -> SearchFn:
        def search(query: LoadedImage, top_k: int) -> dict[str, Any]:
            result = next(iter(search_index(scorer, opened, [query], top_k, shortlist, by, searcher)))
            return search_json(result, skipped, legend)
        return search
    return {by: ranked_by(by) for by in RANKINGS}


def watched_files(scorer: Scorer, opened: OpenIndex) -> list[Path]:
    """What the state was loaded from: the model's files, the index's own, and the collection's listing (its
    manifest, or a folder's own entry, whose mtime changes when a file is added or removed)."""
    model_files = [scorer.model_dir / WEIGHTS_FILE, scorer.model_dir / DESCRIPTOR_SCORE_FILE]
    index_files = [opened.folder / name for name in (INDEX_MANIFEST, VECTORS, NORMS)]
    listing = opened.root / layout.MANIFEST
    return [*model_files, *index_files, listing if listing.is_file() else opened.root]


def build_state(scorer: Scorer, opened: OpenIndex, default_by: str = RANKINGS[0]) -> ServiceState:
    """The default wiring: the CLI's compare payload, the CLI's search over the index by each ranking."""
    def compare(a: LoadedImage, b: LoadedImage, names: tuple[str, str]) -> dict[str, Any]:
        return compare_payload(scorer, a, b, names)

    return ServiceState(scorer, compare, index_searches(scorer, opened), opened,
                        FileStamps.of(watched_files(scorer, opened)), default_by)


def load_state(workspace: Path, model: Path | None = None, index: Path | None = None,
               originals: Path | None = None) -> ServiceState:
    """The model of `--model` (default: the workspace's) and the index `artsim search` would use with the same
    options (artsim.app.indexes.open_index): `--index DIR` as built (refused when built with another model),
    `--originals DIR` indexed in the user cache, else the workspace's data/index when built with this model,
    else the workspace's originals indexed in the user cache."""
    scorer = load(model if model is not None else workspace)
    return build_state(scorer, open_index(scorer, index, originals, workspace), default_ranking(scorer))
