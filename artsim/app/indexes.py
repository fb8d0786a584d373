"""Which index a search uses: `--index DIR` as built; by default the workspace's data/index (stage index)
when it was built with the model in use; else the index of a collection kept in the user cache.

`--originals DIR` and the workspace's ingested originals (the default) are indexed on first use under
$ARTSIM_CACHE/index/<key of the collection's folder>, and brought up to date on each later call
(artsim.index.build: an unchanged original is not read again).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from artsim.app.api import LoadedImage, Scorer, UnusableImage, open_image
from artsim.core import layout
from artsim.core.cache_dirs import user_cache_root
from artsim.core.errors import UserError
from artsim.index import DEFAULT_SHORTLIST, RANKING_NAMES
from artsim.index.build import BuildReport, update_index
from artsim.index.collection import INGESTED, Collection, CollectionError, workspace_collection
from artsim.index.folder import folder_collection
from artsim.index.search import Query, Searcher
from artsim.index.store import StoredIndex, load_index

log = logging.getLogger(__name__)

WORKSPACE_INDEX = layout.INDEX  # the index stage's output (dvc.yaml)


@dataclass(frozen=True)
class OpenIndex:
    index: StoredIndex
    folder: Path
    root: Path  # hit paths are root / location
    report: BuildReport | None  # None: used as built (--index)


def cached_index_folder(collection_root: Path) -> Path:
    key = hashlib.sha256(str(collection_root.resolve()).encode()).hexdigest()[:24]
    return user_cache_root() / "index" / key


def index_collection(scorer: Scorer, collection: Collection, folder: Path | None = None) -> OpenIndex:
    """The index of `collection` in `folder` (default: the user cache's), made current first."""
    folder = folder if folder is not None else cached_index_folder(collection.root)
    index, report = update_index(folder, collection, scorer.index_embedder())
    return OpenIndex(index, folder, collection.root, report)


def _workspace_index(scorer: Scorer, workspace: Path) -> OpenIndex | None:
    """The index stage's data/index when it was built with this model (`dvc repro` keeps it current);
    None otherwise (the workspace's originals are then indexed in the user cache)."""
    index, problem = load_index(workspace / WORKSPACE_INDEX)
    if problem:
        log.warning(
            "%s cannot be used (%s): indexing the originals in the user cache instead",
            workspace / WORKSPACE_INDEX,
            problem,
        )
    if index is None or index.model != scorer.fingerprint:
        return None
    return OpenIndex(index, workspace / WORKSPACE_INDEX, workspace / INGESTED, None)


def collection_at(folder: Path) -> Collection:
    """A workspace's ingested originals when `folder` is a workspace (it has them), else the folder's images."""
    try:
        is_workspace = (folder / INGESTED / layout.MANIFEST).is_file()
        return workspace_collection(folder) if is_workspace else folder_collection(folder)
    except CollectionError as exc:
        raise UserError(str(exc)) from None


def open_index(scorer: Scorer, index_dir: Path | None, originals: Path | None, workspace: Path) -> OpenIndex:
    if index_dir is not None and originals is not None:
        raise UserError("give --index or --originals, not both")
    if index_dir is None and originals is None:
        built = _workspace_index(scorer, workspace)
        if built is not None:
            return built
    if index_dir is None:
        try:
            collection = folder_collection(originals) if originals is not None else workspace_collection(workspace)
        except CollectionError as exc:
            raise UserError(str(exc)) from None
        return index_collection(scorer, collection)
    index, problem = load_index(index_dir)
    if index is None:
        raise UserError(
            f"--index {index_dir}: "
            + (problem or "no index there (make one with `artsim index DIR --out`)")
            + "; rebuild it with `artsim index`"
        )
    if index.model != scorer.fingerprint:
        raise UserError(
            f"--index {index_dir} was built with another model: rebuild it with `artsim index` for this one"
        )
    return OpenIndex(index, index_dir, Path(index.root), None)


def searcher_for(scorer: Scorer, opened: OpenIndex, shortlist: int = DEFAULT_SHORTLIST) -> Searcher:
    """The search of an opened index with this model: its trunk embeds, its head scores, its thresholds judge each
    hit (its mark and verdict sentence), its calibration gives fused's probability."""
    return Searcher(opened.index, opened.root, scorer.embed, scorer.head_scores, scorer.judge, shortlist,
                    scorer.calibration)


def decoded_queries(sources: Iterable[str | LoadedImage]) -> Iterator[Query]:
    """Each query image decoded (as the pipeline decodes its own) when the search reaches it, or why it cannot be."""
    for source in sources:
        try:
            loaded = open_image(source)
        except UnusableImage as exc:
            yield Query(str(source), None, str(exc))
            continue
        yield Query(loaded.name, loaded.image)


def default_ranking(scorer: Scorer) -> str:
    """`--by` when not given: what the evaluate stage found best on held-out queries for these weights
    (models/verdict.json), else the model."""
    chosen = scorer.search_default
    return chosen if chosen in RANKING_NAMES else RANKING_NAMES[0]
