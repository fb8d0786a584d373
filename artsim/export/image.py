"""`artsim export image ID OUT`: one original or variant, as its stored bytes, to a file.

ID is what the manifests and search results call an image: an original's or a variant's `id`,
or its location `…/data/ingested/shards/88.tar#512+107765` (shard, offset, length). Only the
workspace's own shards are read, through their manifests: a location that no manifest row
names is an unknown id, whatever file it points at.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from artsim.core import layout
from artsim.core.errors import UserError
from artsim.core.images import ImageFile, ImageRejected, write_atomically
from artsim.core.shards import LOCATION_COLUMNS, manifest_images, read_locations
from artsim.export.targets import check_image_target
from artsim.export.writer import checked_bytes

LOCATION = re.compile(r"^(?P<shard>.+)#(?P<offset>\d+)\+(?P<length>\d+)$")
IMAGE_FOLDERS = (layout.INGESTED, layout.GENERATED)


def find_image(workspace: Path, ident: str) -> ImageFile:
    """Where the image `ident` is stored; UserError when no manifest of the workspace names it."""
    for folder in IMAGE_FOLDERS:
        path = workspace / folder / layout.MANIFEST
        if not path.is_file():
            continue
        manifest = read_locations(path)
        row = _matching(manifest, folder, ident)
        if len(row):
            return manifest_images(row.head(1), workspace / folder)[0]
    raise UserError(f"{ident}: no original or variant of {workspace} has this id or location")


def _matching(manifest: pd.DataFrame, folder: Path, ident: str) -> pd.DataFrame:
    by_id = manifest[manifest["id"].astype(str) == ident] if "id" in manifest else manifest.iloc[:0]
    location = LOCATION.match(ident)
    if len(by_id) or not location or not set(LOCATION_COLUMNS) <= set(manifest.columns):
        return by_id
    # A search result names the shard by the path it was opened with: compare its tail, `data/<stage>/shards/x.tar`.
    shard = location["shard"].replace("\\", "/")
    fulls = ((folder / name).as_posix() for name in manifest["shard"].astype(str))
    named = [shard == full or shard.endswith("/" + full) for full in fulls]
    same = (pd.Series(named, index=manifest.index) & (manifest["offset"] == int(location["offset"]))
            & (manifest["length"] == int(location["length"])))
    return manifest[same]


def export_image(workspace: Path, ident: str, out: Path, *, force: bool = False) -> Path:
    """Write the image `ident` of `workspace` to `out` as stored (a JPEG, bytes unchanged)."""
    workspace, out = Path(workspace), Path(out)
    image = find_image(workspace, ident)
    check_image_target(workspace, out, force)
    try:
        data = checked_bytes(image)
    except ImageRejected as exc:
        raise UserError(f"{ident}: its stored image cannot be read ({exc}); rerun the stage that made it") from None
    write_atomically(out, lambda handle: handle.write(data), durable=False)
    return out
