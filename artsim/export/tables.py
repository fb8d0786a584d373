"""The workspace's originals, variants and pairs as the export's rows: metadata columns, the Hugging
Face split of each row, and where its image is stored (a shard member or a loose file).

Only metadata is held here (tens of bytes per row); images are read one row group at a time by
the writer. Row order is fixed (split, then id), so the same workspace gives the same export.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from artsim.core import layout
from artsim.core.errors import UserError
from artsim.core.shards import manifest_images
from artsim.export.features import ORIGINAL_COLUMNS, PAIR_KEY_COLUMNS, VARIANT_COLUMNS, Column, pair_columns

# The pipeline's split names -> the names `datasets` and the Hub use.
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
SPLITS = tuple(SPLIT_NAMES.values())
IMAGE, SIZE, SPLIT = "_image", "_bytes", "_split"  # the rows' own columns, not exported as such
DEFAULTS = {"string": "", "int64": 0, "float64": float("nan"), "float32": float("nan"), "bool": False}


@dataclass(frozen=True)
class Skipped:
    """A row left out of the export, and why (a short, countable reason)."""

    table: str
    id: str
    reason: str
    detail: str = ""


@dataclass
class Table:
    """One config of the export: its columns and its rows (with IMAGE, SIZE and SPLIT beside them)."""

    name: str
    columns: tuple[Column, ...]
    rows: pd.DataFrame
    skipped: list[Skipped] = field(default_factory=list)

    def split(self, name: str) -> pd.DataFrame:
        return self.rows[self.rows[SPLIT] == name]


def originals(workspace: Path, licences: dict[str, tuple[str, str]]) -> Table:
    """The ingested originals; `licences` maps a source path to its (licence, source) where the
    manifest does not carry them."""
    manifest = _manifest(workspace / layout.INGESTED)
    if "license" not in manifest and len(manifest):
        found = [licences.get(str(path), ("", "")) for path in manifest.get("source_path", [""] * len(manifest))]
        manifest["license"], manifest["source"] = [f[0] for f in found], [f[1] for f in found]
    table = Table("originals", ORIGINAL_COLUMNS, _rows(manifest, ORIGINAL_COLUMNS))
    return _unique_ids(_known_splits(table, _column(manifest, "split")))


def variants(workspace: Path) -> Table:
    """The generated variants, not yet in a split (they take their original's: `in_original_splits`)."""
    manifest = _manifest(workspace / layout.GENERATED)
    return _unique_ids(Table("variants", VARIANT_COLUMNS, _rows(manifest, VARIANT_COLUMNS)))


def in_original_splits(table: Table, original_splits: pd.Series) -> Table:
    """Each variant in its original's split (`original_splits`: id -> split of the originals actually
    exported); one whose original is not there is left out."""
    splits = table.rows["original_id"].map(original_splits)
    orphans = splits.isna()
    table.skipped += [Skipped("variants", i, "original_not_exported", f"its original {o} is not in the export")
                      for i, o in zip(table.rows.loc[orphans, "id"], table.rows.loc[orphans, "original_id"])]
    table.rows = _ordered(table.rows[~orphans].assign(**{SPLIT: splits[~orphans]}))
    return table


def _unique_ids(table: Table) -> Table:
    """A manifest made by hand may name an id twice: the first row keeps it (ids join the configs)."""
    repeated = table.rows["id"].duplicated()
    table.skipped += [Skipped(table.name, i, "duplicate_id", "an earlier row has this id")
                      for i in table.rows.loc[repeated, "id"]]
    table.rows = table.rows[~repeated]
    return table


def pairs(workspace: Path) -> Table:
    """The scored pairs, by the ids of their two images (`joined` keeps those whose images are exported)."""
    table = _read_pairs(workspace / layout.PAIRS_TABLE)
    keys = {c.name for c in PAIR_KEY_COLUMNS} | {"split"}
    scores = [name for name in table.columns if name not in keys and pd.api.types.is_float_dtype(table[name])]
    columns = pair_columns(scores)
    return _known_splits(Table("pairs", columns, _rows(table, columns)), _column(table, "split"))


def joined(table: Table, original_ids: set[str], variant_ids: set[str]) -> Table:
    """The pairs whose original and variant are both in the export; the others are left out."""
    rows = table.rows
    kept = rows["original_id"].isin(original_ids) & rows["generated_id"].isin(variant_ids)
    table.skipped += [Skipped("pairs", p, "image_not_exported", "its original or variant is not in the export")
                      for p in rows.loc[~kept, "pair_id"]]
    table.rows = rows[kept].reset_index(drop=True)
    return table


def _read_pairs(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=[column.name for column in PAIR_KEY_COLUMNS])
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: the pairs table cannot be read ({exc}); rerun the score stage") from None
    missing = [column.name for column in PAIR_KEY_COLUMNS if column.name not in table]
    if missing:
        raise UserError(f"{path}: the pairs table has no column {missing[0]!r}; rerun the score stage")
    return table


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series([""] * len(frame), index=frame.index, dtype=object)


def _manifest(folder: Path) -> pd.DataFrame:
    """A stage's manifest with IMAGE (where each image is) and SIZE (its bytes, for planning shards)."""
    path = folder / layout.MANIFEST
    if not path.is_file():
        return pd.DataFrame({IMAGE: [], SIZE: []})
    try:
        manifest = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable manifest ({exc}); rerun its stage") from None
    try:
        manifest[IMAGE] = manifest_images(manifest, folder)
    except ValueError as exc:  # it names shards outside its folder: no row of it can be trusted
        raise UserError(str(exc)) from None
    manifest[SIZE] = [getattr(image, "length", 0) for image in manifest[IMAGE]]
    return manifest


def _rows(frame: pd.DataFrame, columns: tuple[Column, ...]) -> pd.DataFrame:
    """The exported columns of `frame`, missing ones filled with their type's empty value, values
    cast to the column's type (a manifest written by hand may hold numbers as text)."""
    rows = {IMAGE: frame.get(IMAGE, pd.Series([None] * len(frame), index=frame.index)),
            SIZE: frame.get(SIZE, pd.Series([0] * len(frame), index=frame.index))}
    for column in columns:
        if column.dtype == "image":
            continue
        empty = pd.Series([DEFAULTS[column.dtype]] * len(frame), index=frame.index)
        values = frame[column.name] if column.name in frame else empty
        rows[column.name] = _cast(values, column.dtype)
    return pd.DataFrame(rows, index=frame.index)


def _cast(values: pd.Series, dtype: str) -> pd.Series:
    if dtype == "string":
        return values.fillna("").astype(str)
    if dtype == "bool":
        return values.fillna(False).astype(bool)
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.fillna(0).round().astype("int64") if dtype == "int64" else numbers.astype(dtype)


def _known_splits(table: Table, pipeline_splits: pd.Series) -> Table:
    """Rows in the Hub's split names; a row with any other split is left out."""
    given = pd.Series(pipeline_splits.astype(str).to_numpy(), index=table.rows.index)
    mapped = given.map(SPLIT_NAMES)
    unknown = mapped.isna()
    ids = table.rows[table.columns[0].name]
    table.skipped += [Skipped(table.name, i, "unknown_split", f"split {s!r} is none of {sorted(SPLIT_NAMES)}")
                      for i, s in zip(ids[unknown], given[unknown])]
    table.rows = _ordered(table.rows[~unknown].assign(**{SPLIT: mapped[~unknown]}))
    return table


def _ordered(rows: pd.DataFrame) -> pd.DataFrame:
    """By split (train, validation, test), then by the first column (the id)."""
    first = next(name for name in rows.columns if name not in (IMAGE, SIZE, SPLIT))
    order = rows[SPLIT].map(SPLITS.index).astype("int64")
    ordered = rows.assign(_order=order).sort_values(["_order", first], kind="stable")
    return ordered.drop(columns="_order").reset_index(drop=True)
