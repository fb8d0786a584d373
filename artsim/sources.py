"""Reading WikiArt in the formats the community distributes it in.

Every reader yields, in a stable order, either a `SourceImage` (where to get the bytes,
the labels, and the split the source prescribes, if any) or a `SourceProblem` (a metadata
row or file that cannot be used, with a countable reason). Nothing is decoded here.

Formats:
- `folder`: `<Style>/<artist-slug>_<title-slug>[-<year>].<ext>`, optionally with our
  `metadata.csv` or Kaggle's `classes.csv` at the root.
- `artgan`: the ArtGAN release: the same tree plus `{style,genre,artist}_{train,val}.csv`
  (`relative/path.jpg,<index>`) and `{style,genre,artist}_class.txt` (`<index> <name>`).
- `hf_parquet`: Parquet shards written by Hugging Face `datasets` (an `image` struct of
  bytes/path and integer `artist`/`genre`/`style` class labels).

Missing label values are never a reason to skip: an empty metadata value falls back to what
the file's path says, and to `unknown` when the path says nothing either.
"""
from __future__ import annotations

import ast
import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import pyarrow.parquet as pq
import yaml

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
LABEL_FIELDS = ("artist", "title", "year", "style", "genre")
UNKNOWN = "unknown"
FORMATS = ("folder", "artgan", "hf_parquet")
Format = Literal["auto", "folder", "artgan", "hf_parquet"]
_YEAR_SUFFIX = re.compile(r"-(\d{3,4})$")
_ARTGAN_TASKS = ("style", "genre", "artist")


@dataclass(frozen=True)
class SourceImage:
    """One image of the source: a file, or bytes embedded in the source (Parquet)."""

    relative: str
    path: Path | None = None
    data: bytes | None = None
    artist: str = UNKNOWN
    title: str = UNKNOWN
    year: str = ""
    style: str = UNKNOWN
    genre: str = UNKNOWN
    source_split: str | None = None


@dataclass(frozen=True)
class SourceProblem:
    relative: str
    reason: str
    detail: str = ""


SourceItem = SourceImage | SourceProblem


def detect_format(root: Path) -> str:
    """The format of `root`, judged from the files that only that format has."""
    if any(root.glob("*.parquet")) or any(root.glob("data/*.parquet")):
        return "hf_parquet"
    if (root / "style_train.csv").is_file() or (root / "style_class.txt").is_file():
        return "artgan"
    return "folder"


def read_source(root: Path, fmt: Format = "auto") -> Iterator[SourceItem]:
    chosen = detect_format(root) if fmt == "auto" else fmt
    readers = {"folder": read_folder, "artgan": read_artgan, "hf_parquet": read_hf_parquet}
    return readers[chosen](root)


# --- labels from a path ------------------------------------------------------------------

def labels_from_path(relative: str) -> dict[str, str]:
    """Labels WikiArt encodes in its layout: `<Style>/<artist-slug>_<title-slug>[-<year>]`."""
    parts = Path(relative).parts
    style = parts[0] if len(parts) > 1 else UNKNOWN
    artist_slug, _, title_slug = Path(relative).stem.partition("_")
    year = ""
    match = _YEAR_SUFFIX.search(title_slug)
    if match:
        year, title_slug = match.group(1), title_slug[: match.start()]
    return {
        "artist": _humanise(artist_slug) or UNKNOWN,
        "title": _humanise(title_slug) or UNKNOWN,
        "year": year,
        "style": style,
        "genre": UNKNOWN,
    }


def _humanise(slug: str) -> str:
    return " ".join(word.capitalize() for word in slug.replace("_", "-").split("-") if word)


def _merge_labels(relative: str, given: dict[str, str]) -> dict[str, str]:
    """Metadata values where present, the path's where not."""
    from_path = labels_from_path(relative)
    return {key: (given.get(key) or "").strip() or from_path[key] for key in LABEL_FIELDS}


# --- paths inside the root ---------------------------------------------------------------

def _resolve_inside(root: Path, relative: str) -> Path | SourceProblem:
    """`root/relative` if it stays inside root (after links are followed), else the problem."""
    candidate = root / relative
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        return SourceProblem(relative, "unreadable_path", str(exc))
    if not resolved.is_relative_to(root.resolve()):
        reason = "link_outside_source" if candidate.is_symlink() else "path_escapes_root"
        return SourceProblem(relative, reason, f"resolves to {resolved}")
    return candidate


# --- folder ------------------------------------------------------------------------------

def read_folder(root: Path) -> Iterator[SourceItem]:
    rows = _read_folder_metadata(root)
    seen: set[str] = set()
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        relative = path.relative_to(root).as_posix()
        seen.add(relative)
        checked = _resolve_inside(root, relative)
        if isinstance(checked, SourceProblem):
            yield checked
            continue
        row = rows.get(relative, {})
        yield SourceImage(relative=relative, path=path, source_split=row.get("split") or None, **_merge_labels(relative, row))
    for relative in sorted(set(rows) - seen):
        checked = _resolve_inside(root, relative)
        yield checked if isinstance(checked, SourceProblem) else SourceProblem(relative, "missing_file", "named in the metadata CSV")


def _read_folder_metadata(root: Path) -> dict[str, dict[str, str]]:
    if (root / "metadata.csv").is_file():
        return {row["filename"]: row for row in _csv_rows(root / "metadata.csv") if row.get("filename")}
    if (root / "classes.csv").is_file():
        return {row["filename"]: _kaggle_labels(row) for row in _csv_rows(root / "classes.csv") if row.get("filename")}
    return {}


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    # utf-8-sig: spreadsheet exports start with a BOM that would otherwise rename the first column.
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            yield {(key or "").strip(): (value or "").strip() for key, value in row.items() if isinstance(value, str)}


def _kaggle_labels(row: dict[str, str]) -> dict[str, str]:
    """Kaggle's classes.csv: its `genre` column holds a list of *style* names; `subset` is the split."""
    styles = _parse_name_list(row.get("genre", ""))
    return {
        "filename": row["filename"],
        "artist": row.get("artist", ""),
        "title": _humanise(row.get("description", "")),
        "style": styles[0] if styles else "",
        "split": {"train": "train", "test": "test"}.get(row.get("subset", "").lower(), ""),
    }


def _parse_name_list(text: str) -> list[str]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return [text] if text else []
    return [str(item) for item in value] if isinstance(value, (list, tuple)) else [str(value)]


# --- ArtGAN ------------------------------------------------------------------------------

def read_artgan(root: Path) -> Iterator[SourceItem]:
    labels: dict[str, dict[str, str]] = {}
    splits: dict[str, str] = {}
    for task in _ARTGAN_TASKS:
        names = _artgan_class_names(root / f"{task}_class.txt")
        for split in ("train", "val"):
            csv_path = root / f"{task}_{split}.csv"
            if not csv_path.is_file():
                continue
            for relative, index in _artgan_rows(csv_path):
                labels.setdefault(relative, {})[task] = names.get(index, UNKNOWN)
                # The style split is the canonical one; the others only fill gaps. ArtGAN's
                # held-out "val" is what the literature reports on: it is our test split.
                if task == "style" or relative not in splits:
                    splits[relative] = "test" if split == "val" else "train"
    for relative in sorted(labels):
        checked = _resolve_inside(root, relative)
        if isinstance(checked, SourceProblem):
            yield checked
        elif not checked.is_file():
            yield SourceProblem(relative, "missing_file", "named in an ArtGAN CSV")
        else:
            yield SourceImage(relative=relative, path=checked, source_split=splits[relative], **_merge_labels(relative, labels[relative]))


def _artgan_class_names(path: Path) -> dict[int, str]:
    if not path.is_file():
        return {}
    names = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        index, _, name = line.strip().partition(" ")
        if index.isdigit() and name.strip():
            names[int(index)] = name.strip()
    return names


def _artgan_rows(path: Path) -> Iterator[tuple[str, int]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.reader(handle):
            if len(row) >= 2 and row[1].strip().lstrip("-").isdigit():
                yield row[0].strip(), int(row[1])


# --- Hugging Face Parquet ----------------------------------------------------------------

def read_hf_parquet(root: Path, batch_rows: int = 64) -> Iterator[SourceItem]:
    """Stream rows of every shard, one record batch at a time, so memory does not grow with the dataset."""
    shards = sorted(root.glob("*.parquet")) or sorted(root.glob("data/*.parquet"))
    for shard in shards:
        parquet = pq.ParquetFile(shard)
        class_names = _hf_class_names(parquet.schema_arrow.metadata or {}, root)
        label_columns = [name for name in ("artist", "genre", "style") if name in parquet.schema_arrow.names]
        row_number = 0
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=["image", *label_columns]):
            for record in batch.to_pylist():
                yield _hf_item(shard.name, row_number, record, label_columns, class_names)
                row_number += 1


def _hf_item(shard: str, row_number: int, record: dict, label_columns: list[str], class_names: dict[str, list[str]]) -> SourceItem:
    image = record.get("image") or {}
    relative = f"{shard}#{row_number}" + (f":{image['path']}" if image.get("path") else "")
    if not image.get("bytes"):
        return SourceProblem(relative, "empty_file", "no embedded image bytes")
    labels = {column: _class_name(class_names.get(column, []), record.get(column)) for column in label_columns}
    if image.get("path"):
        labels = _merge_labels(image["path"], labels)
    return SourceImage(relative=relative, data=image["bytes"], **labels)


def _class_name(names: list[str], index) -> str:
    if isinstance(index, int) and 0 <= index < len(names):
        return names[index]
    return UNKNOWN if index is None else str(index)


def _hf_class_names(schema_metadata: dict, root: Path) -> dict[str, list[str]]:
    """ClassLabel names from the shard's `huggingface` metadata, else dataset_info.json, else the README card."""
    if b"huggingface" in schema_metadata:
        features = json.loads(schema_metadata[b"huggingface"]).get("info", {}).get("features", {})
        return _names_from_features(features)
    if (root / "dataset_info.json").is_file():
        info = json.loads((root / "dataset_info.json").read_text(encoding="utf-8"))
        return _names_from_features(info.get("features", info))
    if (root / "README.md").is_file():
        return _names_from_readme(root / "README.md")
    return {}


def _names_from_features(features: dict) -> dict[str, list[str]]:
    return {name: list(spec["names"]) for name, spec in features.items() if isinstance(spec, dict) and "names" in spec}


def _names_from_readme(readme: Path) -> dict[str, list[str]]:
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    card = yaml.safe_load(text.split("---", 2)[1]) or {}
    infos = card.get("dataset_info", {})
    features = (infos[0] if isinstance(infos, list) else infos).get("features", [])
    names = {}
    for feature in features:
        class_label = (feature.get("dtype") or {}).get("class_label") if isinstance(feature.get("dtype"), dict) else None
        if class_label:
            by_index = class_label["names"]
            names[feature["name"]] = [by_index[key] for key in sorted(by_index, key=int)]
    return names
