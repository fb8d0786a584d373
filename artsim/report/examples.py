"""The images the report shows: a bounded number of originals with their variants at every
strength, one variant under each held-out alteration, and evaluate's gallery. Only those
images are read (one pread each from their shard); the manifests are read for the columns
that choose them. Every image is decoded defensively and shown as a small JPEG data: URI; one
that cannot be read is a placeholder with its reason, never a crash."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image

from artsim.core import layout
from artsim.core.alterations import EVALUATION
from artsim.core.images import ImageFile, ImageRejected, fit_within, load_rgb
from artsim.core.shards import manifest_images
from artsim.report.figures import png_uri
from artsim.report.sources import Workspace

LOCATION = ["id", "path"]
SHARD_COLUMNS = ["shard", "offset", "length"]
ORIGINAL_TEXT = ["title", "artist", "style", "genre", "split"]
# evaluate's gallery is shown at most this wide (it is a few hundred pixels at the default).
GALLERY_SIDE = 1400


@dataclass(frozen=True)
class Thumb:
    caption: str
    uri: str | None  # None: not readable
    problem: str = ""


@dataclass(frozen=True)
class Example:
    """One original and its variants, by increasing strength."""

    original: Thumb
    about: dict[str, str]
    variants: list[Thumb] = field(default_factory=list)


def thumbnail(source: ImageFile, side: int, caption: str) -> Thumb:
    try:
        image = load_rgb(source, long_side_at_least=side)
    except ImageRejected as exc:
        return Thumb(caption, None, exc.reason)
    return Thumb(caption, jpeg_uri(fit_within(image, side)))


def jpeg_uri(image: Image.Image, quality: int = 85) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=False)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pick_originals(originals: pd.DataFrame, with_variants: set[str], count: int) -> pd.DataFrame:
    """`count` originals that have variants, taken in turn from each style (styles and ids sorted), so
    that the examples span the styles; the same manifests give the same picks."""
    if count <= 0:
        return originals.iloc[0:0]
    candidates = originals[originals["id"].astype(str).isin(with_variants)]
    style = candidates["style"].astype(str) if "style" in candidates else pd.Series("", index=candidates.index)
    ordered = candidates.assign(_style=style, _id=candidates["id"].astype(str)).sort_values(
        ["_style", "_id"], kind="stable"
    )
    ordered = ordered.assign(_turn=ordered.groupby("_style").cumcount()).sort_values(
        ["_turn", "_style", "_id"], kind="stable"
    )
    return ordered.head(count).drop(columns=["_style", "_id", "_turn"])


def _manifest(workspace: Workspace, folder: Path, extra: list[str]) -> pd.DataFrame | None:
    return workspace.parquet(folder / layout.MANIFEST, LOCATION, [*SHARD_COLUMNS, *extra])


def _images(workspace: Workspace, table: pd.DataFrame, folder: Path) -> list[ImageFile] | None:
    try:
        return manifest_images(table, workspace.path(folder))
    except ValueError as exc:  # a manifest naming a shard outside its folder
        workspace.gaps.add(folder / layout.MANIFEST, str(exc))
        return None


def examples(workspace: Workspace, count: int, side: int) -> list[Example]:
    """Up to `count` originals with their variants, one per strength (the first variant by id)."""
    originals = _manifest(workspace, layout.INGESTED, ORIGINAL_TEXT)
    variants = _manifest(workspace, layout.GENERATED, ["original_id", "strength"])
    if originals is None or variants is None or not {"original_id", "strength"} <= set(variants.columns):
        return []
    variants = variants.assign(
        original_id=variants["original_id"].astype(str), strength=pd.to_numeric(variants["strength"], errors="coerce")
    )
    picked = pick_originals(originals, set(variants["original_id"]), count)
    chosen = (
        variants[variants["original_id"].isin(set(picked["id"].astype(str)))]
        .sort_values(["original_id", "strength", "id"], kind="stable")
        .drop_duplicates(["original_id", "strength"])
    )
    original_files, variant_files = (
        _images(workspace, picked, layout.INGESTED),
        _images(workspace, chosen, layout.GENERATED),
    )
    if original_files is None or variant_files is None:
        return []
    variant_of = {}
    for row, image in zip(chosen.itertuples(index=False), variant_files, strict=True):
        variant_of.setdefault(row.original_id, []).append(thumbnail(image, side, f"strength {row.strength:g}"))
    found = []
    for (_, row), image in zip(picked.iterrows(), original_files, strict=True):
        about = {key: str(row[key]) for key in ORIGINAL_TEXT if key in row.index}
        found.append(Example(thumbnail(image, side, "original"), about, variant_of.get(str(row["id"]), [])))
    return found


def altered(workspace: Workspace, side: int) -> list[Thumb]:
    """The held-out alterations of evaluate (artsim.core.alterations.EVALUATION) on one variant: the
    first variant by id at the middle strength; [] without a generated manifest."""
    variants = _manifest(workspace, layout.GENERATED, ["strength"])
    if variants is None or variants.empty:
        return []
    strengths = (
        sorted(pd.to_numeric(variants.get("strength"), errors="coerce").dropna().unique())
        if "strength" in variants
        else []
    )
    if strengths:
        variants = variants[pd.to_numeric(variants["strength"], errors="coerce") == strengths[len(strengths) // 2]]
    first = variants.sort_values("id", kind="stable").head(1)
    files = _images(workspace, first, layout.GENERATED)
    if not files:
        return []
    try:
        image = fit_within(load_rgb(files[0], long_side_at_least=side), side)
    except ImageRejected as exc:
        return [Thumb("variant", None, exc.reason)]
    return [
        Thumb("variant as generated", jpeg_uri(image)),
        *(Thumb(name, jpeg_uri(alteration.apply(image))) for name, alteration in EVALUATION.items()),
    ]


def gallery(workspace: Workspace) -> str | None:
    """evaluate's gallery (best, median and worst test pairs) as a PNG data: URI, decoded and encoded
    again (so that what is inlined is an image), or None."""
    relative = layout.plots_dir("evaluate") / "gallery.png"
    path = workspace.readable(relative)
    if path is None:
        return None
    try:
        image = fit_within(load_rgb(path), GALLERY_SIDE)
    except ImageRejected as exc:
        workspace.gaps.add(relative, f"not an image ({exc.reason})")
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return png_uri(buffer.getvalue())
