"""Parquet shards of one config's split, written row group by row group with pyarrow.

Images are read when their row group is written and dropped after it, so memory holds at most
`rows_per_group` images whatever the size of the collection. Shards are planned before any is
written, from the rows' byte sizes, so their names (`train-00000-of-00003.parquet`, the Hub's
convention) are known; the same rows give the same files byte for byte.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from artsim.core.images import MAX_FILE_BYTES, ImageFile, ImageRejected, read_regular_file
from artsim.export.features import Column, arrow_schema
from artsim.export.tables import IMAGE, SIZE, Skipped

IMAGE_COLUMN = "image"


@dataclass(frozen=True)
class ShardLimits:
    """How rows are cut into files and row groups. ~100 image rows per row group is what the Hub's
    viewer reads comfortably; a few hundred MB per file keeps downloads resumable."""

    rows_per_group: int = 100
    rows_per_shard: int = 5000
    bytes_per_shard: int = 256 << 20

    def __post_init__(self) -> None:
        for name in ("rows_per_group", "rows_per_shard", "bytes_per_shard"):
            if getattr(self, name) < 1:
                raise ValueError(f"ShardLimits.{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class SplitWritten:
    rows: int
    files: list[str]
    bytes: int


def plan_shards(sizes: list[int], limits: ShardLimits) -> list[range]:
    """Consecutive ranges of rows, each within the row and byte limits (a row bigger than the
    byte limit gets a shard of its own); at least one range, empty for no rows."""
    ranges, start, total = [], 0, 0
    for index, size in enumerate(sizes):
        if index > start and (index - start >= limits.rows_per_shard or total + size > limits.bytes_per_shard):
            ranges.append(range(start, index))
            start, total = index, 0
        total += size
    ranges.append(range(start, len(sizes)))
    return ranges


def write_split(folder: Path, split: str, rows: pd.DataFrame, columns: tuple[Column, ...], limits: ShardLimits,
                skipped: Callable[[Skipped], None], table: str) -> SplitWritten:
    """`rows` as `folder/<split>-NNNNN-of-NNNNN.parquet`; a row whose image cannot be read is
    reported through `skipped` and left out; no file at all when no row is left."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = plan_shards(rows[SIZE].astype("int64").tolist(), limits)
    schema = arrow_schema(columns)
    has_image = any(column.dtype == "image" for column in columns)
    written = SplitWritten(0, [], 0)
    progress = tqdm(total=len(rows), desc=f"export {table}/{split}", unit="row", disable=not len(rows))
    for number, shard in enumerate(plan):
        path = folder / f"{split}-{number:05d}-of-{len(plan):05d}.parquet"
        options = {"compression": _compression(columns), "write_statistics": _statistics(columns)}
        with pq.ParquetWriter(path, schema, **options) as out:
            for group in _groups(rows.iloc[shard.start:shard.stop], limits.rows_per_group):
                records = [r for r in _records(group, columns, has_image, skipped, table) if r is not None]
                if records:  # a row group of 0 rows stops `datasets` (batch size 0); an empty file is read as 0 rows
                    out.write_table(pa.Table.from_pylist(records, schema=schema), row_group_size=len(records))
                written.rows += len(records)
                progress.update(len(group))
        written.files.append(path.name)
        written.bytes += path.stat().st_size
    progress.close()
    if not written.rows:  # `datasets` cannot load a split without rows: the split is left out of the export
        for name in written.files:
            (folder / name).unlink()
        return SplitWritten(0, [], 0)
    return written


def _groups(rows: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(rows), size):
        yield rows.iloc[start:start + size]


def _records(group: pd.DataFrame, columns: tuple[Column, ...], has_image: bool,
             skipped: Callable[[Skipped], None], table: str) -> Iterator[dict | None]:
    names = [column.name for column in columns if column.dtype != "image"]
    for row in group.to_dict("records"):
        record = {name: row[name] for name in names}
        if has_image:
            try:
                record[IMAGE_COLUMN] = {"bytes": checked_bytes(row[IMAGE]), "path": f"{record['id']}.jpg"}
            except ImageRejected as exc:
                skipped(Skipped(table, record["id"], exc.reason, exc.detail))
                yield None
                continue
        yield record


def checked_bytes(image: ImageFile) -> bytes:
    """The stored bytes of a pipeline image, as they are (no re-encoding), once their header decodes."""
    try:
        data = image.read_bytes() if not isinstance(image, Path) else read_regular_file(image, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise ImageRejected("missing_file", str(image)) from None
    except OSError as exc:
        raise ImageRejected("unreadable", f"{image}: {exc.strerror or exc}") from None
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.size  # the header only: enough to know a reader will open it
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("undecodable", f"{image}: {exc}") from None
    return data


def _compression(columns: tuple[Column, ...]) -> dict[str, str]:
    # JPEG bytes do not compress: spend no time trying.
    return {path: ("none" if path.startswith(f"{IMAGE_COLUMN}.") else "zstd") for path in _leaf_paths(columns)}


def _statistics(columns: tuple[Column, ...]) -> list[str]:
    return [path for path in _leaf_paths(columns) if not path.startswith(f"{IMAGE_COLUMN}.")]


def _leaf_paths(columns: tuple[Column, ...]) -> list[str]:
    return [path for column in columns
            for path in ([f"{column.name}.bytes", f"{column.name}.path"] if column.dtype == "image" else [column.name])]
