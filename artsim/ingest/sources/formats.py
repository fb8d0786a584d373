"""Reading WikiArt in the formats the community distributes it in.

Every reader yields, in a stable order, either a `SourceImage` or a `SourceProblem` (see
`artsim.ingest.sources.items`). Nothing is decoded here.

Formats:
- `folder`: `<Style>/<artist-slug>_<title-slug>[-<year>].<ext>`, optionally with our
  `metadata.csv` or Kaggle's `classes.csv` at the root.
- `artgan`: the ArtGAN release: the same tree plus `{style,genre,artist}_{train,val}.csv`
  (`relative/path.jpg,<index>`) and `{style,genre,artist}_class.txt` (`<index> <name>`).
- `hf_parquet`: Parquet shards written by Hugging Face `datasets` (`artsim.ingest.sources.hf_parquet`).

A malformed metadata row is skipped (`bad_metadata_row`) together with the file it names:
that file's labels and prescribed split are unknown. A metadata file or shard that is
unusable as a whole raises `SourceError` when the reader is called, before any image is read.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Callable, Iterator, Literal

from artsim.core.paths import resolve_inside
from artsim.ingest.sources.hf_parquet import read_hf_parquet
from artsim.ingest.sources.items import (
    BAD_ROW,
    LABEL_FIELDS,
    UNKNOWN,
    SourceImage,
    SourceItem,
    SourceProblem,
    humanise,
    labels_from_path,
    merge_labels,
)
from artsim.ingest.sources.metadata_csv import (
    BadRow,
    CsvRow,
    SourceError,
    legible,
    read_csv_cells,
    read_csv_rows,
    read_text_lines,
)

# Re-exported: callers import the whole vocabulary of sources from here.
__all__ = ["LABEL_FIELDS", "UNKNOWN", "SourceError", "SourceImage", "SourceItem", "SourceProblem", "detect_format",
           "labels_from_path", "read_artgan", "read_folder", "read_folder_metadata", "read_hf_parquet", "read_source"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
Format = Literal["auto", "folder", "artgan", "hf_parquet"]
_ARTGAN_TASKS = ("style", "genre", "artist")


def detect_format(root: Path) -> str:
    """The format of `root`, judged from the files that only that format has."""
    if any(root.glob("*.parquet")) or any(root.glob("data/*.parquet")):
        return "hf_parquet"
    if (root / "style_train.csv").is_file() or (root / "style_class.txt").is_file():
        return "artgan"
    return "folder"


def read_source(root: Path, fmt: Format = "auto") -> Iterator[SourceItem]:
    """The items of the source; raises SourceError now (not while iterating) for an unusable metadata file or shard."""
    chosen = detect_format(root) if fmt == "auto" else fmt
    readers = {"folder": read_folder, "artgan": read_artgan, "hf_parquet": read_hf_parquet}
    return readers[chosen](root)


# --- paths inside the root ---------------------------------------------------------------

def _resolve_inside(root: Path, relative: str) -> Path | SourceProblem:
    """`root/relative` if it stays inside root (after links are followed), else the problem."""
    if "\0" in relative:  # no file can have this name; os calls would raise ValueError
        return SourceProblem(legible(relative).replace("\0", "\\0"), "unreadable_path", "a NUL character in the name")
    checked = resolve_inside(root, relative)
    return (
        checked
        if isinstance(checked, Path)
        else SourceProblem(legible(relative), checked.reason, legible(checked.detail))
    )


def _row_problem(bad: BadRow) -> SourceProblem:
    """A malformed row is reported under the file it names when that is legible, else under `file:line`."""
    return SourceProblem(bad.filename or bad.where, BAD_ROW, bad.detail)


# --- folder ------------------------------------------------------------------------------

def read_folder(root: Path) -> Iterator[SourceItem]:
    return _folder_items(root, read_folder_metadata(root))


def _folder_items(root: Path, rows: dict[str, dict[str, str] | SourceProblem]) -> Iterator[SourceItem]:
    seen: set[str] = set()
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        on_disk = path.relative_to(root).as_posix()
        # A file name that is not UTF-8 is kept under a legible name (Parquet and CSV need UTF-8).
        relative = legible(on_disk)
        seen.add(relative)
        checked = _resolve_inside(root, on_disk)
        row = rows.get(relative, {})
        if isinstance(checked, SourceProblem) or isinstance(row, SourceProblem):
            yield checked if isinstance(checked, SourceProblem) else row
            continue
        yield SourceImage(
            relative=relative, path=path, source_split=row.get("split") or None, **merge_labels(relative, row)
        )
    for relative in sorted(set(rows) - seen):
        if isinstance(rows[relative], SourceProblem):
            yield rows[relative]
            continue
        checked = _resolve_inside(root, relative)
        yield (
            checked
            if isinstance(checked, SourceProblem)
            else SourceProblem(relative, "missing_file", "named in the metadata CSV")
        )


def read_folder_metadata(root: Path) -> dict[str, dict[str, str] | SourceProblem]:
    """The root's metadata.csv (or Kaggle's classes.csv): `filename` -> its labels, or its row's problem."""
    if (root / "metadata.csv").is_file():
        return _rows_by_file(root / "metadata.csv", dict)
    if (root / "classes.csv").is_file():
        return _rows_by_file(root / "classes.csv", _kaggle_labels)
    return {}


def _rows_by_file(
    path: Path, labels_of: Callable[[dict[str, str]], dict[str, str]]
) -> dict[str, dict[str, str] | SourceProblem]:
    """`filename` -> the labels of its row, or the problem of that row (under `file:line` when no file is legible)."""
    rows: dict[str, dict[str, str] | SourceProblem] = {}
    for record in read_csv_rows(path, required=("filename",)):
        entry = _row_entry(path, record, labels_of)
        rows[entry.relative if isinstance(entry, SourceProblem) else entry["filename"]] = entry
    return rows


def _row_entry(
    path: Path, record: CsvRow | BadRow, labels_of: Callable[[dict[str, str]], dict[str, str]]
) -> dict[str, str] | SourceProblem:
    if isinstance(record, BadRow):
        return _row_problem(record)
    filename, where = record.values.get("filename", ""), f"{path.name} line {record.line}"
    if not filename:
        return SourceProblem(f"{path.name}:{record.line}", BAD_ROW, f"{where}: no filename")
    try:
        return {**labels_of(record.values), "filename": filename}
    except ValueError as exc:
        return SourceProblem(filename, BAD_ROW, f"{where}: {exc}")


def _kaggle_labels(row: dict[str, str]) -> dict[str, str]:
    """Kaggle's classes.csv: its `genre` column holds a list of *style* names; `subset` is the split."""
    styles = _parse_name_list(row.get("genre", ""))
    return {
        "filename": row["filename"],
        "artist": row.get("artist", ""),
        "title": humanise(row.get("description", "")),
        "style": styles[0] if styles else "",
        "split": {"train": "train", "test": "test"}.get(row.get("subset", "").lower(), ""),
    }


def _parse_name_list(text: str) -> list[str]:
    """A Python list literal of names (`['Impressionism']`) or a bare name; ValueError for anything else."""
    if not text.startswith(("[", "(", "{", "'", '"')):
        return [text] if text else []
    try:
        value = ast.literal_eval(text)
    # TypeError: `{[1]: 2}` (an unhashable key); MemoryError/RecursionError: absurd nesting.
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"genre {text[:80]!r} is not a list of names ({type(exc).__name__})") from None
    names = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(name, (str, int, float)) for name in names):
        raise ValueError(f"genre {text[:80]!r} is not a list of names")
    return [str(name) for name in names]


# --- ArtGAN ------------------------------------------------------------------------------

def read_artgan(root: Path) -> Iterator[SourceItem]:
    labels: dict[str, dict[str, str]] = {}
    splits: dict[str, str] = {}
    problems: dict[str, SourceProblem] = {}
    for task in _ARTGAN_TASKS:
        names = _artgan_class_names(root / f"{task}_class.txt")
        for split in ("train", "val"):
            csv_path = root / f"{task}_{split}.csv"
            if not csv_path.is_file():
                continue
            for row in _artgan_rows(csv_path):
                if isinstance(row, SourceProblem):
                    problems[row.relative] = row
                    continue
                relative, index = row
                labels.setdefault(relative, {})[task] = names.get(index, UNKNOWN)
                # The style split is the canonical one; the others only fill gaps. ArtGAN's
                # held-out "val" is what the literature reports on: it is our test split.
                if task == "style" or relative not in splits:
                    splits[relative] = "test" if split == "val" else "train"
    return _artgan_items(root, labels, splits, problems)


def _artgan_items(
    root: Path, labels: dict[str, dict[str, str]], splits: dict[str, str], problems: dict[str, SourceProblem]
) -> Iterator[SourceItem]:
    for relative in sorted(set(labels) | set(problems)):
        checked = _resolve_inside(root, relative)
        if relative in problems or isinstance(checked, SourceProblem):
            yield problems.get(relative) or checked
        elif not checked.exists():  # not is_file(): a FIFO or folder is reported by ingest, unopened
            yield SourceProblem(relative, "missing_file", "named in an ArtGAN CSV")
        else:
            yield SourceImage(
                relative=relative,
                path=checked,
                source_split=splits[relative],
                **merge_labels(relative, labels[relative]),
            )


def _artgan_class_names(path: Path) -> dict[int, str]:
    if not path.is_file():
        return {}
    names = {}
    for _, line in read_text_lines(path):
        index, _, name = line.strip().partition(" ")
        if index.isdigit() and name.strip():
            names[int(index)] = name.strip()
    return names


def _artgan_rows(path: Path) -> Iterator[tuple[str, int] | SourceProblem]:
    for record in read_csv_cells(path, name_column=0):
        if isinstance(record, BadRow):
            yield _row_problem(record)
            continue
        relative, index = record.values["0"], record.values.get("1", "")
        if not relative or not index.lstrip("-").isdigit():
            yield SourceProblem(
                relative or f"{path.name}:{record.line}",
                BAD_ROW,
                f"{path.name} line {record.line}: expected `path,<class index>`",
            )
        else:
            yield relative, int(index)


