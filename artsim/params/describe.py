"""Block `describe`: the classical descriptors' settings, and where they are cached."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from artsim.params.base import RUN_ONLY, Block, CacheFolder, user_cache_when_null


class DescribeParams(Block):
    size: int = Field(256, ge=32, le=2048, description="long side the image is resized to before describing")
    hsv_bins: tuple[int, int, int] = (16, 4, 4)
    haralick_levels: int = Field(32, ge=2, le=256)
    canny_low: float = Field(50.0, ge=0.0)
    canny_high: float = Field(150.0, ge=0.0)
    edge_grid: int = Field(8, ge=1, le=64)
    # Run-only, and left out of model_dump: descriptor_score.json and model cards record what
    # decides a descriptor, not where this machine cached it.
    workers: int | None = Field(None, ge=1, exclude=True, description="describing processes; null = all cores",
                                json_schema_extra=RUN_ONLY)
    cache: Annotated[CacheFolder, user_cache_when_null("descriptors")] = Field(
        None, validate_default=True, exclude=True,
        description="descriptors per image and params, outside every DVC output; null = the user cache",
        json_schema_extra=RUN_ONLY)

    @field_validator("hsv_bins")
    @classmethod
    def _bins_positive(cls, bins: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(b < 1 or b > 256 for b in bins):
            raise ValueError("each HSV bin count must be in 1..256")
        return bins

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> "DescribeParams":
        if self.canny_low > self.canny_high:
            raise ValueError("canny_low must not exceed canny_high")
        return self

