"""The columns of each table of the export, with the Hugging Face `datasets` features they carry.

A Parquet file that `datasets` reads as typed (an `Image` column decoded to a PIL image, not a
struct of bytes) says so in its schema metadata: key `huggingface`, value
`{"info": {"features": {...}}}` in the library's own serialisation. The same columns are listed
in the card's YAML header (`dataset_info.features`), where the Hub reads them; both come from here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
# The arrow type and the dtype name `datasets` gives it (Value(dtype) in the features, `dtype:` in the card).
VALUE_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "float32": pa.float32(),
               "bool": pa.bool_()}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # a key of VALUE_TYPES, or "image"

    @property
    def arrow_type(self) -> pa.DataType:
        return IMAGE_TYPE if self.dtype == "image" else VALUE_TYPES[self.dtype]

    @property
    def feature(self) -> dict[str, str]:
        return {"_type": "Image"} if self.dtype == "image" else {"dtype": self.dtype, "_type": "Value"}


def _strings(*names: str) -> tuple[Column, ...]:
    return tuple(Column(name, "string") for name in names)


ORIGINAL_COLUMNS = (
    Column("id", "string"), Column("image", "image"),
    *_strings("artist", "title", "year", "style", "genre"),
    Column("width", "int64"), Column("height", "int64"),
    *_strings("hash", "source_path", "license", "source"),
)
VARIANT_COLUMNS = (
    Column("id", "string"), Column("image", "image"), Column("original_id", "string"), Column("strength", "float64"),
    *_strings("style_source_id", "backend", "model"), Column("seed", "int64"), Column("prompt", "string"),
    Column("width", "int64"), Column("height", "int64"),
)
# Pairs name their images by id (the originals' and variants' `id`): each image is stored once.
PAIR_KEY_COLUMNS = (
    Column("pair_id", "string"), Column("original_id", "string"), Column("generated_id", "string"),
    Column("positive", "bool"), Column("strength", "float64"),
)


def pair_columns(score_columns: list[str]) -> tuple[Column, ...]:
    """The pairs' columns: their keys, then each similarity column the score stage wrote (the weighted
    `score` and every descriptor's part), as float64."""
    return (*PAIR_KEY_COLUMNS, *(Column(name, "float64") for name in score_columns))


def arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    features = {column.name: column.feature for column in columns}
    metadata = {"huggingface": json.dumps({"info": {"features": features}})}
    return pa.schema([pa.field(column.name, column.arrow_type) for column in columns], metadata=metadata)


def card_features(columns: tuple[Column, ...]) -> list[dict[str, str]]:
    """The columns as the card's YAML lists them (`- name: image` / `dtype: image`)."""
    return [{"name": column.name, "dtype": column.dtype} for column in columns]
