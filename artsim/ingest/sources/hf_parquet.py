"""Reading Parquet shards written by Hugging Face `datasets` (WikiArt as `huggan/wikiart` ships it).

Every shard's schema and class names are checked first, from footers and small side files:
a shard that cannot be used fails the run at once with a `SourceError` naming the file (and
the line, for JSON and YAML), instead of after hours of ingesting its predecessors. Rows are
then streamed a record batch at a time; a row group whose pages turn out damaged costs its
rows only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from artsim.ingest.sources.items import UNKNOWN, SourceImage, SourceItem, SourceProblem, merge_labels
from artsim.ingest.sources.metadata_csv import SourceError, legible


@dataclass(frozen=True)
class _Shard:
    path: Path
    label_columns: list[str]
    class_names: dict[str, list[str]]


def read_hf_parquet(root: Path, batch_rows: int = 64) -> Iterator[SourceItem]:
    """Stream rows of every shard, one record batch at a time, so memory does not grow with the dataset.

    Every shard's schema and class names are checked first (footers only), so that a bad
    shard fails the run before any image is read rather than halfway through.
    """
    paths = sorted(root.glob("*.parquet")) or sorted(root.glob("data/*.parquet"))
    fallback_names: dict[str, list[str]] | None = None
    shards = []
    for path in paths:
        schema = shard_schema(path)
        if b"huggingface" in (schema.metadata or {}):
            names = schema_class_names(path, schema.metadata)
        else:
            fallback_names = card_class_names(root) if fallback_names is None else fallback_names
            names = fallback_names
        label_columns = [name for name in ("artist", "genre", "style") if name in schema.names]
        shards.append(_Shard(path, label_columns, names or {}))
    return _hf_items(shards, batch_rows)


def _hf_items(shards: list[_Shard], batch_rows: int) -> Iterator[SourceItem]:
    for shard in shards:
        parquet = pq.ParquetFile(shard.path)
        first_row = 0
        for group in range(parquet.num_row_groups):
            # Row group by row group: damaged pages (found only when read) cost their row group.
            group_rows = parquet.metadata.row_group(group).num_rows
            row_number = first_row
            try:
                for batch in parquet.iter_batches(
                    batch_size=batch_rows, row_groups=[group], columns=["image", *shard.label_columns]
                ):
                    for record in batch.to_pylist():
                        yield _hf_item(shard.path.name, row_number, record, shard.label_columns, shard.class_names)
                        row_number += 1
            except (pa.ArrowException, OSError) as exc:
                last_row = first_row + group_rows - 1
                yield SourceProblem(
                    f"{shard.path.name}#{row_number}-{last_row}", "unreadable_rows", f"row group {group}: {exc}"
                )
            first_row += group_rows


def _hf_item(
    shard: str, row_number: int, record: dict, label_columns: list[str], class_names: dict[str, list[str]]
) -> SourceItem:
    image = record.get("image")
    data, inner_path = (
        (image, None) if isinstance(image, bytes) else ((image or {}).get("bytes"), (image or {}).get("path"))
    )
    inner_path = legible(str(inner_path)) if inner_path else None
    relative = f"{shard}#{row_number}" + (f":{inner_path}" if inner_path else "")
    if not data:
        return SourceProblem(relative, "empty_file", "no embedded image bytes")
    labels = {column: _class_name(class_names.get(column, []), record.get(column)) for column in label_columns}
    if inner_path:
        labels = merge_labels(inner_path, labels)
    return SourceImage(relative=relative, data=data, **labels)


def _class_name(names: list[str], index: object) -> str:
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(names):
        return names[index]
    return UNKNOWN if index is None else legible(str(index))


# --- what a shard must hold, and the class names its card gives ---------------------------

def shard_schema(path: Path) -> pa.Schema:
    """The shard's schema, from its footer, if its `image` column holds image bytes."""
    if not path.is_file():  # checked without opening: opening a FIFO would block
        raise SourceError(f"{path}: not a regular file")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: not a readable Parquet file ({exc})") from None
    if "image" not in schema.names:
        raise SourceError(f"{path}: no 'image' column (columns: {', '.join(schema.names)})")
    image_type = schema.field("image").type
    if not (_is_binary(image_type) or (pa.types.is_struct(image_type) and image_type.get_field_index("bytes") >= 0
                                       and _is_binary(image_type.field("bytes").type))):
        raise SourceError(f"{path}: column 'image' is {image_type}; expected a struct of bytes/path or binary")
    return schema


def _is_binary(arrow_type: pa.DataType) -> bool:
    return pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type)


def schema_class_names(path: Path, schema_metadata: dict) -> dict[str, list[str]]:
    """ClassLabel names from a shard's `huggingface` schema metadata."""
    try:
        info = json.loads(schema_metadata[b"huggingface"])
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError and names the line
        raise SourceError(f"{path}: its 'huggingface' schema metadata is not JSON ({exc})") from None
    dataset_info = info.get("info", {}) if isinstance(info, dict) else None
    return _names_from_features(path, dataset_info.get("features", {}) if isinstance(dataset_info, dict) else None)


def card_class_names(root: Path) -> dict[str, list[str]]:
    """ClassLabel names from dataset_info.json, else the README card."""
    if (root / "dataset_info.json").is_file():
        path = root / "dataset_info.json"
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: not JSON ({exc})") from None
        return _names_from_features(path, info.get("features", info) if isinstance(info, dict) else None)
    if (root / "README.md").is_file():
        return _names_from_readme(root / "README.md")
    return {}


def _names_from_features(path: Path, features: object) -> dict[str, list[str]]:
    if not isinstance(features, dict):
        raise SourceError(f"{path}: 'features' is not a mapping of column -> feature")
    names = {}
    for column, spec in features.items():
        if isinstance(spec, dict) and isinstance(spec.get("names"), list):
            names[column] = [legible(str(name)) for name in spec["names"]]
    return names


def _names_from_readme(readme: Path) -> dict[str, list[str]]:
    try:
        text = readme.read_text(encoding="utf-8")
        card = yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") else {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:  # a YAMLError's text names the line
        raise SourceError(f"{readme}: unreadable dataset card ({exc})") from None
    infos = card.get("dataset_info", {}) if isinstance(card, dict) else {}
    info = (infos[0] if infos else {}) if isinstance(infos, list) else infos
    features = info.get("features", []) if isinstance(info, dict) else []
    names = {}
    for feature in features if isinstance(features, list) else []:
        dtype = feature.get("dtype") if isinstance(feature, dict) else None
        class_label = dtype.get("class_label") if isinstance(dtype, dict) else None
        by_index = class_label.get("names") if isinstance(class_label, dict) else None
        if isinstance(by_index, dict) and all(str(key).isdigit() for key in by_index):
            names[str(feature.get("name"))] = [legible(str(by_index[key])) for key in sorted(by_index, key=int)]
    return names
