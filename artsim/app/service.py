"""What `artsim serve` holds in memory: the model, the descriptor scorer and the index of the collection
(artsim.index), loaded once at startup, and the limits every request is held to.

`ServiceState` is the seam between the HTTP layer (artsim.app.serve) and the model: its `compare`, `search`,
`original` and `health` answer the routes, the search through the very Searcher of `artsim search` (and in the
shape of `artsim search --json`, artsim.app.render), so the routes never rank anything themselves. Originals
are named by the index's entry ids only.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artsim.app.api import WEIGHTS_FILE, LoadedImage, Scorer, compare_payload, load
from artsim.app.indexes import OpenIndex, default_ranking, open_index, searcher_for
from artsim.app.render import served_search_json, threshold_note
from artsim.core import layout
from artsim.core.images import ImageFile
from artsim.index import DEFAULT_SHORTLIST, RANKING_NAMES
from artsim.index.build import image_at
from artsim.index.search import Query, Searcher
from artsim.index.store import ANN, NORMS, VECTORS
from artsim.index.store import MANIFEST as INDEX_MANIFEST
from artsim.score.scorer import FILE_NAME as DESCRIPTOR_SCORE_FILE

MAX_TOP_K = 100


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


class ServiceState:
    """The model and the index a server answers with: one method per route."""

    scorer: Scorer
    opened: OpenIndex  # the index searched; its entry ids are GET /original/{id}'s and compare's b_original
    searcher: Searcher  # built once: per index, not per request
    default_ranking: str
    sources: FileStamps
    threshold_notes: dict[str, str]  # per ranking: what marks its hits
    row_of_id: dict[str, int]

    def __init__(self, scorer: Scorer, opened: OpenIndex, default_ranking: str = RANKING_NAMES[0],
                 shortlist: int = DEFAULT_SHORTLIST) -> None:
        self.scorer = scorer
        self.opened = opened
        self.searcher = searcher_for(scorer, opened, shortlist)
        self.default_ranking = default_ranking
        self.sources = FileStamps.of(watched_files(scorer, opened))
        self.threshold_notes = {ranking: threshold_note(scorer, ranking) for ranking in RANKING_NAMES}
        self.row_of_id = {identifier: row for row, identifier in enumerate(opened.index.entries.ids)}

    def compare(self, a: LoadedImage, b: LoadedImage) -> dict[str, Any]:
        """The compare JSON of `artsim compare --json`, the pair named by the images' names."""
        return compare_payload(self.scorer, a, b, (a.name, b.name))

    def search(self, image: LoadedImage, top_k: int, ranking: str) -> dict[str, Any]:
        """The search of `artsim search --json --by RANKING` for one query, with the ranking used."""
        [result] = self.searcher.search([Query(image.name, image.image)], top_k, ranking)
        return served_search_json(ranking, result, self.searcher.skipped, self.threshold_notes[ranking])

    def original(self, image_id: str) -> ImageFile | None:
        """The original of an index entry id (None: no such entry); where it lies comes from the index only."""
        row = self.row_of_id.get(image_id)
        return None if row is None else image_at(self.opened.root, self.opened.index.entries.locations[row])

    def health(self) -> dict[str, Any]:
        changed = self.sources.changed()
        index_model = self.opened.index.model
        return {
            "status": "ok",
            "model_fingerprint": self.scorer.fingerprint,
            "index_size": len(self.opened.index.entries),
            "index_model_fingerprint": index_model,
            "index_model_match": index_model == self.scorer.fingerprint,
            "stale": bool(changed),
            "changed": changed,
            "search_by": sorted(RANKING_NAMES),
            "default_by": self.default_ranking,
        }


def watched_files(scorer: Scorer, opened: OpenIndex) -> list[Path]:
    """What the state was loaded from: the model's files (its verdict thresholds among them), the index's own (its
    approximate index among them, which only a large collection has: one appearing, rebuilt or gone counts), and
    the collection's listing (its manifest, or a folder's own entry, whose mtime changes when a file is added or
    removed)."""
    model_files = [scorer.model_dir / WEIGHTS_FILE, scorer.model_dir / DESCRIPTOR_SCORE_FILE, scorer.verdict_file]
    index_files = [opened.folder / name for name in (INDEX_MANIFEST, VECTORS, NORMS, ANN)]
    listing = opened.root / layout.MANIFEST
    return [*model_files, *index_files, listing if listing.is_file() else opened.root]


def load_state(workspace: Path, model: Path | None = None, index: Path | None = None,
               originals: Path | None = None) -> ServiceState:
    """The model of `--model` (default: the workspace's) and the index `artsim search` would use with the same
    options (artsim.app.indexes.open_index): `--index DIR` as built (refused when built with another model),
    `--originals DIR` indexed in the user cache, else the workspace's data/index when built with this model,
    else the workspace's originals indexed in the user cache."""
    scorer = load(model if model is not None else workspace)
    return ServiceState(scorer, open_index(scorer, index, originals, workspace), default_ranking(scorer))
