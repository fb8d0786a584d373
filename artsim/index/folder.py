"""The originals of any folder of images, named by the folder's metadata CSV where it has one.

Apart from artsim.index.collection (a workspace's originals) because it reads the CSV as ingest does (its reader):
the index stage indexes a workspace only, and so does not depend on ingest's code.
"""
from __future__ import annotations

import logging
from pathlib import Path

from artsim.index import IMAGE_SUFFIXES
from artsim.index.collection import Collection, CollectionError, Original
from artsim.ingest.sources.formats import read_folder_metadata
from artsim.ingest.sources.items import SourceProblem
from artsim.ingest.sources.metadata_csv import SourceError, legible

log = logging.getLogger(__name__)


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
