"""Turning a WikiArt folder into normalised, deduplicated, labelled, split images.

A WikiArt folder is `<Style>/<artist-slug>_<title-slug>[-<year>].<ext>`, optionally with a
`metadata.csv` at its root (columns filename, artist, title, year, style, genre, ...). Labels
come from the CSV row of a file when there is one, and from its path otherwise.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd
from tqdm import tqdm

from artsim.images import ImageRejected, content_hash, fit_within, load_rgb, save_jpeg_atomic

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
LABEL_FIELDS = ("artist", "title", "year", "style", "genre")
UNKNOWN = "unknown"
SPLITS = ("train", "val", "test")
_YEAR_SUFFIX = re.compile(r"-(\d{3,4})$")


@dataclass(frozen=True)
class SourceImage:
    """One image file of the source and the labels known for it."""

    path: Path
    relative: str
    artist: str = UNKNOWN
    title: str = UNKNOWN
    year: str = ""
    style: str = UNKNOWN
    genre: str = UNKNOWN


@dataclass(frozen=True)
class IngestSettings:
    max_side: int = 512
    min_side: int = 32
    max_pixels: int = 89_478_485
    jpeg_quality: int = 95
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    seed: int = 42


@dataclass
class IngestReport:
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    splits: Counter = field(default_factory=Counter)
    skipped_files: list[dict[str, str]] = field(default_factory=list)

    def skip(self, relative: str, reason: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        self.skipped_files.append({"source_path": relative, "reason": reason, "detail": detail})
        log.warning("skipped %s: %s %s", relative, reason, detail)

    def as_metrics(self) -> dict:
        return {
            "kept": self.kept,
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "splits": {name: self.splits.get(name, 0) for name in SPLITS},
        }


def labels_from_path(relative: str) -> dict[str, str]:
    """Labels WikiArt encodes in its layout: `<Style>/<artist-slug>_<title-slug>[-<year>]`."""
    parts = Path(relative).parts
    style = parts[0] if len(parts) > 1 else UNKNOWN
    stem = Path(relative).stem
    artist_slug, _, title_slug = stem.partition("_")
    year = ""
    match = _YEAR_SUFFIX.search(title_slug)
    if match:
        year = match.group(1)
        title_slug = title_slug[: match.start()]
    return {
        "artist": _humanise(artist_slug) or UNKNOWN,
        "title": _humanise(title_slug) or UNKNOWN,
        "year": year,
        "style": style,
        "genre": UNKNOWN,
    }


def _humanise(slug: str) -> str:
    return " ".join(word.capitalize() for word in slug.replace("_", "-").split("-") if word)


def read_metadata(csv_path: Path) -> dict[str, dict[str, str]]:
    """Rows of a metadata.csv keyed by their relative file name; missing values become `unknown`."""
    rows: dict[str, dict[str, str]] = {}
    with open(csv_path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            name = (row.get("filename") or "").strip()
            if not name:
                continue
            labels = {key: (row.get(key) or "").strip() for key in LABEL_FIELDS}
            rows[name] = {key: value or ("" if key == "year" else UNKNOWN) for key, value in labels.items()}
    return rows


def scan_folder(root: Path) -> Iterator[SourceImage]:
    """Every image file under `root` in a stable order, labelled from metadata.csv or its path."""
    metadata_path = root / "metadata.csv"
    metadata = read_metadata(metadata_path) if metadata_path.is_file() else {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        relative = path.relative_to(root).as_posix()
        labels = metadata.get(relative) or labels_from_path(relative)
        yield SourceImage(path=path, relative=relative, **labels)


def assign_split(image_hash: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """A split that depends only on the image's own content, so adding images never moves one."""
    draw = int(hashlib.sha256(f"{seed}:{image_hash}".encode()).hexdigest()[:16], 16) / 16**16
    if draw < test_fraction:
        return "test"
    if draw < test_fraction + val_fraction:
        return "val"
    return "train"


def ingest(sources: Iterable[SourceImage], out_dir: Path, settings: IngestSettings, total: int | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Decode, validate, normalise and deduplicate `sources` into `out_dir/images/<id>.jpg`.

    Returns the manifest (one row per kept image) and a report of what was skipped and why.
    """
    report = IngestReport()
    rows: list[dict] = []
    first_source_of: dict[str, str] = {}
    for source in tqdm(sources, total=total, desc="ingest", unit="img"):
        try:
            image = load_rgb(source.path, max_pixels=settings.max_pixels, min_side=settings.min_side)
        except ImageRejected as exc:
            report.skip(source.relative, exc.reason, exc.detail)
            continue
        image_hash = content_hash(image)
        if image_hash in first_source_of:
            report.skip(source.relative, "duplicate", f"same content as {first_source_of[image_hash]}")
            continue
        first_source_of[image_hash] = source.relative
        rows.append(_write_normalised(image, image_hash, source, out_dir, settings))
        report.kept += 1
        report.splits[rows[-1]["split"]] += 1
    return _manifest(rows), report


def _write_normalised(image, image_hash: str, source: SourceImage, out_dir: Path, settings: IngestSettings) -> dict:
    image_id = image_hash[:16]
    normalised = fit_within(image, settings.max_side)
    relative_path = f"images/{image_id}.jpg"
    save_jpeg_atomic(normalised, out_dir / relative_path, settings.jpeg_quality)
    labels = {key: value for key, value in asdict(source).items() if key in LABEL_FIELDS}
    return {
        "id": image_id,
        "hash": image_hash,
        "path": relative_path,
        "source_path": source.relative,
        **labels,
        "split": assign_split(image_hash, settings.seed, settings.val_fraction, settings.test_fraction),
        "width": normalised.width,
        "height": normalised.height,
    }


MANIFEST_COLUMNS = ["id", "hash", "path", "source_path", *LABEL_FIELDS, "split", "width", "height"]


def _manifest(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    return frame.sort_values("id", kind="stable").reset_index(drop=True)
