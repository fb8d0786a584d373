"""The originals of a collection: a workspace's ingested images (shards and loose files) or any folder's
(artsim.index.folder).

Each original has a stable id, its image (a loose file or a shard member) and where that lies
relative to the collection's root (what the index stores, so that it never trusts an absolute path).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from artsim.core import layout
from artsim.core.images import ImageFile
from artsim.core.shards import ShardMember, cell_text, manifest_images

INGESTED = layout.INGESTED


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
    manifest_path = root / layout.MANIFEST
    if not manifest_path.is_file():
        raise CollectionError(f"{manifest_path} is missing: run `dvc repro` in {workspace}, or pass --originals DIR")
    manifest = pd.read_parquet(manifest_path)
    blank = [""] * len(manifest)
    ids = manifest["id"] if "id" in manifest.columns else manifest["path"]
    originals = [Original(str(i), image, cell_text(artist), cell_text(title))
                 for i, image, artist, title in zip(ids, manifest_images(manifest, root), manifest.get("artist", blank),
                                                     manifest.get("title", blank))]
    return Collection(root, originals)
