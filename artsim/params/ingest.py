"""Block `ingest`: where the paintings come from, how they are decoded, split and subset."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from artsim.core.image_header import MAX_PIXELS
from artsim.params.base import RUN_ONLY, Block


class IngestParams(Block):
    source: Path
    format: Literal["auto", "folder", "artgan", "hf_parquet"] = "auto"
    max_side: int = Field(512, ge=32, le=8192)
    min_side: int = Field(32, ge=1)
    max_pixels: int = Field(MAX_PIXELS, ge=1, description="decompression-bomb guard, checked before decoding")
    max_file_bytes: int = Field(268_435_456, ge=1, description="larger files are skipped from their size, unread")
    jpeg_quality: int = Field(95, ge=50, le=100)
    split: Literal["hash", "from_source"] = "hash"
    split_seed: int = Field(
        42, ge=0, description="which images land in which split (and subset); not the training seed"
    )
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    max_images: int | None = Field(None, ge=1, description="deterministic, label-stratified subset; null = all")
    per_class: int | None = Field(None, ge=1, description="cap per label of stratify_by; null = no cap")
    stratify_by: Literal["style", "genre", "artist"] = "style"
    workers: int | None = Field(
        None, ge=1, description="decoding processes; null = all cores", json_schema_extra=RUN_ONLY
    )

    @model_validator(mode="after")
    def _leaves_a_train_split(self) -> "IngestParams":
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1 so that a train split remains")
        return self

