"""The originals of a collection: a workspace's ingested images (shards and loose files) or any folder.

Each original has a stable id, its image (a loose file or a shard member) and where that lies
relative to the collection's root (what the index stores, so that it never trusts an absolute path).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from artsim.core import layout
from artsim.core.images import ImageFile
from artsim.core.shards import ShardMember, cell_text, manifest_images
from artsim.index import IMAGE_SUFFIXES

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


def folder_collection(folder: Path) -> Collection:
    """Every image file under `folder` (by suffix; FIFOs and devices are not files), in a stable order;
    id = path relative to the folder, title = file stem."""
    if not folder.is_dir():
        raise CollectionError(f"--originals {folder}: not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise CollectionError(f"--originals {folder}: no image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return Collection(folder, [Original(p.relative_to(folder).as_posix(), p, "", p.stem) for p in paths])
