"""The originals of a collection: a workspace's ingested images (shards and loose files) or any folder.

Each original has a stable id, its image (a loose file or a shard member) and where that lies
relative to the collection's root (what the index stores, so that it never trusts an absolute path).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from artsim.core import layout
from artsim.core.images import ImageFile
from artsim.core.shards import ShardMember, cell_text, manifest_images
from artsim.index import IMAGE_SUFFIXES
from artsim.ingest.sources.formats import read_folder_metadata
from artsim.ingest.sources.items import SourceProblem
from artsim.ingest.sources.metadata_csv import SourceError, legible

INGESTED = layout.INGESTED
log = logging.getLogger(__name__)


class CollectionError(ValueError):
    """The collection cannot be enumerated (not a folder, no manifest, no image): one line for the user."""


@dataclass(frozen=True)
class Original:
    id: str
    image: ImageFile
    artist: str = ""
    title: str = ""

    def stat_key(self) -> tuple[int, int]:
        """(size, mtime_ns) of the bytes: an unchanged key means an unchanged image, never read again.
        A shard member's size is its own length; its mtime is its shard's."""
        if isinstance(self.image, ShardMember):
            return self.image.length, os.stat(self.image.shard).st_mtime_ns
        status = os.stat(self.image)
        return status.st_size, status.st_mtime_ns


@dataclass(frozen=True)
class Collection:
    root: Path
    originals: list[Original]
    problems: dict[str, str] = field(default_factory=dict)  # what of the folder's metadata CSV was ignored, and why


def workspace_collection(workspace: Path) -> Collection:
    """The workspace's ingested originals (data/ingested/manifest.parquet), ids from the manifest."""
    root = workspace / INGESTED
    manifest_path = root / "manifest.parquet"
    if not manifest_path.is_file():
        raise CollectionError(f"{manifest_path} is missing: run `dvc repro` in {workspace}, or pass --originals DIR")
    manifest = pd.read_parquet(manifest_path)
    blank = [""] * len(manifest)
    ids = manifest["id"] if "id" in manifest.columns else manifest["path"]
    originals = [Original(str(i), image, cell_text(artist), cell_text(title))
                 for i, image, artist, title in zip(ids, manifest_images(manifest, root), manifest.get("artist", blank),
                                                     manifest.get("title", blank))]
    return Collection(root, originals)


def folder_collection(folder: Path) -> Collection:
    """Every image file under `folder` (by suffix; FIFOs and devices are not files), in a stable order;
    id = path relative to the folder; artist and title from the folder's metadata CSV where it has them (as
    ingest reads it), else no artist and the file's stem. What of the CSV cannot be used is reported and ignored."""
    if not folder.is_dir():
        raise CollectionError(f"--originals {folder}: not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise CollectionError(f"--originals {folder}: no image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
    ids = [p.relative_to(folder).as_posix() for p in paths]
    labels, problems = _folder_labels(folder, {legible(i) for i in ids})
    for where, why in problems.items():
        log.warning("%s: metadata ignored: %s", where, why)
    rows = [labels.get(legible(i), {}) for i in ids]
    originals = [Original(i, p, row.get("artist", ""), row.get("title") or p.stem)
                 for i, p, row in zip(ids, paths, rows)]
    return Collection(folder, originals, problems)


def _folder_labels(folder: Path, images: set[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The metadata rows of the folder's images (file -> labels), and what could not be used (where -> why):
    the whole CSV when it is unusable, a malformed row, a row naming no image of the folder (`..` included)."""
    try:
        rows = read_folder_metadata(folder)
    except (SourceError, OSError) as exc:
        return {}, {str(getattr(exc, "filename", None) or folder): str(exc)}
    labels, problems = {}, {}
    for name, row in rows.items():
        if isinstance(row, SourceProblem):
            problems[legible(name)] = f"{row.reason}: {row.detail}"
        elif name not in images:
            problems[legible(name)] = "the metadata CSV names no such image file in the folder"
        else:
            labels[name] = row
    return labels, problems
