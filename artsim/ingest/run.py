"""Turning a WikiArt source into normalised, deduplicated, labelled, split images.

Sources are read by `artsim.ingest.sources.formats`; this module decodes every image defensively (in
parallel worker processes), writes it as an RGB JPEG named by the hash of its file,
keeps each content once (packed into tar shards, see artsim.core.shards), assigns a split that
never changes as the dataset grows, and reports every file it could not use with a reason. Whatever the
bytes of one file do to a
decoder costs that file only; the manifest and skip list appear only when ingest finishes.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterable, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from artsim.core.images import (
    MAX_PIXELS,
    ImageRejected,
    content_hash,
    fit_within,
    jpeg_bytes,
    load_rgb,
    read_regular_file,
)
from artsim.core.layout import MANIFEST
from artsim.core.parallel import ordered_map
from artsim.core.shards import SHARD_BYTES, SHARD_FOLDER, ShardWriter, bucket
from artsim.ingest.sources.formats import LABEL_FIELDS, SourceImage, SourceItem, SourceProblem
from artsim.ingest.sources.metadata_csv import legible

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# `path` names the image's member in its shard; `shard`, `offset` and `length` locate it.
MANIFEST_COLUMNS = [
    "id",
    "hash",
    "path",
    "source_path",
    *LABEL_FIELDS,
    "split",
    "width",
    "height",
    "shard",
    "offset",
    "length",
]
INTEGER_COLUMNS = ("width", "height", "offset", "length")
MANIFEST_SCHEMA = pa.schema(
    [(name, pa.int64() if name in INTEGER_COLUMNS else pa.large_string()) for name in MANIFEST_COLUMNS]
)
SKIPPED = "skipped.csv"
# Manifest rows buffered before they are written out as one Parquet row group.
ROWS_PER_GROUP = 4096
SplitMethod = Literal["hash", "from_source"]


@dataclass(frozen=True)
class IngestSettings:
    max_side: int = 512
    min_side: int = 32
    max_pixels: int = MAX_PIXELS
    jpeg_quality: int = 95
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    split_method: SplitMethod = "hash"
    # Decides the split (and a subset), independent of the training seed; 42 is the split
    # every committed result was computed on.
    split_seed: int = 42
    max_file_bytes: int = 268_435_456
    workers: int = 1


@dataclass
class IngestReport:
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    splits: Counter = field(default_factory=Counter)
    skipped_files: list[dict[str, str]] = field(default_factory=list)

    def skip(self, relative: str, reason: str, detail: str = "") -> None:
        relative, detail = legible(relative), legible(detail)[:500]  # CSV/JSON-safe, bounded
        self.skipped[reason] += 1
        self.skipped_files.append({"source_path": relative, "reason": reason, "detail": detail})
        log.warning("skipped %s: %s %s", relative, reason, detail)

    def as_metrics(self) -> dict:
        """The headline: the same keys on every dataset (skip reasons are a table, see skipped_by_reason)."""
        return {
            "kept": self.kept,
            "skipped": sum(self.skipped.values()),
            "splits": {name: self.splits.get(name, 0) for name in SPLITS},
        }

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return dict(sorted(self.skipped.items()))

    def skipped_by_reason_table(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.skipped_by_reason.items()), columns=["reason", "count"])


# --- split and subset ----------------------------------------------------------------------

def _unit_draw(*parts: object) -> float:
    """A uniform number in [0, 1) that depends only on `parts`."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:16], 16) / 16**16


def assign_split(
    image_hash: str, seed: int, val_fraction: float, test_fraction: float, source_split: str | None = None
) -> str:
    """A split that depends only on the image's own content, so adding images never moves one.

    With a split prescribed by the source (`from_source`), its test images stay test and
    validation is carved out of its train images by the same draw.
    """
    draw = _unit_draw(seed, image_hash)
    if source_split == "test":
        return "test"
    if source_split == "train":
        return "val" if draw < val_fraction else "train"
    if draw < test_fraction:
        return "test"
    return "val" if draw < test_fraction + val_fraction else "train"


def select_subset(
    items: Iterable[SourceItem], max_images: int | None, per_class: int | None, stratify_by: str, seed: int
) -> set[str]:
    """The `relative` names of a deterministic, label-stratified subset of the source's images.

    Within each class images are ranked by a seeded hash of their name; `per_class` keeps
    the first ones of each class, `max_images` then takes classes in proportion to their
    size by interleaving them on their rank quantile.
    """
    by_class: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for item in items:
        if isinstance(item, SourceImage):
            by_class[getattr(item, stratify_by)].append((_unit_draw(seed, item.relative), item.relative))
    ranked: list[tuple[float, float, str]] = []
    for members in by_class.values():
        members.sort()
        kept = members[:per_class] if per_class else members
        ranked.extend(((rank + 0.5) / len(kept), draw, relative) for rank, (draw, relative) in enumerate(kept))
    ranked.sort()
    chosen = ranked[:max_images] if max_images else ranked
    return {relative for _, _, relative in chosen}


# --- the ingest loop -----------------------------------------------------------------------

def ingest(items: Iterable[SourceItem], out_dir: Path, settings: IngestSettings, total: int | None = None,
           shard_bytes: int = SHARD_BYTES) -> IngestReport:
    """Decode, validate, normalise and deduplicate `items` into `out_dir/shards/<bucket>.tar`
    (member `images/<id>.jpg` each), `out_dir/manifest.parquet` (one row per kept image, in source
    order, locating it) and `out_dir/skipped.csv` (every file not kept, with the reason).

    Memory holds a bounded window of images in flight, one row group of the manifest,
    and the set of content hashes seen (for deduplication): rows go to disk as they come.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    report = IngestReport()
    first_source_of: dict[str, str] = {}
    normalise = partial(_normalise, settings=settings)
    with ManifestWriter(out_dir / MANIFEST) as manifest, ShardWriter(out_dir / SHARD_FOLDER, shard_bytes) as shards:
        results = ordered_map(normalise, items, settings.workers, on_crash=_decoder_crashed)
        for result in tqdm(results, total=total, desc="ingest", unit="img"):
            if isinstance(result, SourceProblem):
                report.skip(result.relative, result.reason, result.detail)
                continue
            if result["hash"] in first_source_of:
                report.skip(result["source_path"], "duplicate", f"same content as {first_source_of[result['hash']]}")
                continue
            first_source_of[result["hash"]] = result["source_path"]
            shard, offset, length = shards.add(result["path"], result.pop("jpeg"), bucket(result["id"]))
            manifest.add({**result, "shard": shard, "offset": offset, "length": length})
            report.kept += 1
            report.splits[result["split"]] += 1
        # Inside the manifest's block: a manifest (renamed into place on leaving it) implies a skip list.
        _write_csv_atomic(
            pd.DataFrame(report.skipped_files, columns=["source_path", "reason", "detail"]), out_dir / SKIPPED
        )
    return report


def dataset_problem(report: IngestReport, settings: IngestSettings, source: Path, out_dir: Path) -> str | None:
    """Why the later stages cannot run on what was kept, in one line naming what to change; else None."""
    counts = ", ".join(f"{name} {report.splits.get(name, 0)}" for name in SPLITS)
    if report.kept == 0:
        skips = ", ".join(f"{reason} {count}" for reason, count in sorted(report.skipped.items())) or "nothing found"
        return (
            f"no image kept from ingest.source={source} "
            f"(skipped: {skips}; each file's reason is in {out_dir / SKIPPED}): "
            "point ingest.source at a folder or dataset of images"
        )
    if report.splits.get("train", 0) == 0:
        return (f"no kept image is in the train split, which every model trains on ({counts}): add images to "
                "ingest.source, lower ingest.val_fraction / ingest.test_fraction, or try another ingest.split_seed")
    if report.splits.get("test", 0) == 0:
        fix = ("set ingest.split: hash (the source prescribes no test image)" if settings.split_method == "from_source"
               else "add images to ingest.source, raise ingest.test_fraction, or try another ingest.split_seed")
        return f"no kept image is in the test split, which evaluate measures on ({counts}): {fix}"
    return None


def _write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    frame.to_csv(temporary, index=False)
    os.replace(temporary, path)


def read_manifest(out_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(Path(out_dir) / MANIFEST)


class ManifestWriter:
    """Manifest rows streamed to a Parquet file, one row group per ROWS_PER_GROUP rows.

    The file is written under a temporary name and renamed to `path` only when the block
    ends without an error: a crashed ingest leaves no valid-looking partial manifest.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        self.rows: list[dict] = []
        self.writer: pq.ParquetWriter | None = None

    def __enter__(self) -> "ManifestWriter":
        self.writer = pq.ParquetWriter(self.partial, MANIFEST_SCHEMA)
        return self

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= ROWS_PER_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.rows and self.writer is not None:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=MANIFEST_SCHEMA))
            self.rows = []

    def __exit__(self, exc_type: type | None, *_: object) -> None:
        try:
            if exc_type is None:
                self.flush()
                self.writer.close()
                os.replace(self.partial, self.path)
        finally:
            self.writer.close()  # a no-op once closed
            self.partial.unlink(missing_ok=True)


def _normalise(item: SourceItem, settings: IngestSettings) -> dict | SourceProblem:
    """Runs in a worker: one source image in, one manifest row (or the reason it failed) out."""
    if isinstance(item, SourceProblem):
        return item
    try:
        data = item.data if item.data is not None else read_regular_file(item.path, settings.max_file_bytes)
        if len(data) > settings.max_file_bytes:
            raise ImageRejected("file_too_large", f"{len(data)} bytes, over max_file_bytes={settings.max_file_bytes}")
        image = load_rgb(
            data, max_pixels=settings.max_pixels, min_side=settings.min_side, long_side_at_least=settings.max_side
        )
        normalised = fit_within(image, settings.max_side)
    except ImageRejected as exc:
        return SourceProblem(item.relative, exc.reason, exc.detail)
    except OSError as exc:
        return SourceProblem(item.relative, "unreadable_file", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # whatever crafted bytes make a decoder raise costs that image only
        return SourceProblem(item.relative, "corrupt_image", f"{type(exc).__name__}: {exc}")
    image_hash = content_hash(data)
    image_id = image_hash[:16]
    source_split = item.source_split if settings.split_method == "from_source" else None
    return {
        "id": image_id,
        "hash": image_hash,
        "path": f"images/{image_id}.jpg",
        "source_path": item.relative,
        **{key: getattr(item, key) for key in LABEL_FIELDS},
        "split": assign_split(
            image_hash, settings.split_seed, settings.val_fraction, settings.test_fraction, source_split
        ),
        "width": normalised.width,
        "height": normalised.height,
        "jpeg": jpeg_bytes(normalised, settings.jpeg_quality),  # packed by the main process, in source order
    }


def _decoder_crashed(item: SourceItem) -> SourceProblem:
    return SourceProblem(
        item.relative, "decoder_crashed", "its worker process died decoding it (e.g. a segfault in a C decoder)"
    )
