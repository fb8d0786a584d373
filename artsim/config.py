"""Typed, validated parameters: one pydantic model per params.yaml block.

The library takes these objects (or plain typed arguments), never the YAML file:
reading params.yaml is the stages' job. Every model forbids unknown keys so that a
typo in params.yaml or in `dvc exp run -S` fails instead of being silently ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ParamsError(ValueError):
    """A params.yaml value is invalid; the message names the key and what is allowed."""


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitFractions(Block):
    val: float = Field(0.15, ge=0.0, lt=1.0)
    test: float = Field(0.2, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _leaves_a_train_split(self) -> "SplitFractions":
        if self.val + self.test >= 1.0:
            raise ValueError("val + test must be below 1 so that a train split remains")
        return self


class IngestParams(Block):
    source: Path
    max_side: int = Field(512, ge=32, le=8192)
    min_side: int = Field(32, ge=1)
    max_pixels: int = Field(89_478_485, ge=1, description="decompression-bomb guard, checked before decoding")
    jpeg_quality: int = Field(95, ge=50, le=100)
    split: SplitFractions = SplitFractions()


class GenerateParams(Block):
    backend: Literal["style_transfer"] = "style_transfer"
    model: Literal["magenta-arbitrary"] = "magenta-arbitrary"
    strengths: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], min_length=1)
    max_side: int = Field(256, ge=32, le=4096)
    jpeg_quality: int = Field(95, ge=50, le=100)

    @field_validator("strengths")
    @classmethod
    def _strengths_in_unit_interval(cls, values: list[float]) -> list[float]:
        if any(not 0.0 < v <= 1.0 for v in values):
            raise ValueError("every strength must be in (0, 1]")
        if len(set(values)) != len(values):
            raise ValueError("strengths must not repeat")
        return values


class DescribeParams(Block):
    size: int = Field(256, ge=32, le=2048, description="long side the image is resized to before describing")
    hsv_bins: tuple[int, int, int] = (16, 4, 4)
    haralick_levels: int = Field(32, ge=2, le=256)
    canny_low: float = Field(50.0, ge=0.0)
    canny_high: float = Field(150.0, ge=0.0)
    edge_grid: int = Field(8, ge=1, le=64)

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


class ScoreWeights(Block):
    color: float = Field(0.4, ge=0.0)
    texture: float = Field(0.3, ge=0.0)
    edges: float = Field(0.3, ge=0.0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> "ScoreWeights":
        if self.color + self.texture + self.edges <= 0:
            raise ValueError("at least one of color, texture, edges must be positive")
        return self

    def as_dict(self) -> dict[str, float]:
        return {"color": self.color, "texture": self.texture, "edges": self.edges}


class ScoreParams(Block):
    weights: ScoreWeights = ScoreWeights()
    negatives: int = Field(1, ge=0, le=100, description="negative pairs per positive pair")


class FinetuneParams(Block):
    weights: str = "none"
    label: Literal["style", "genre"] = "style"
    min_class_size: int = Field(2, ge=1, description="classes with fewer train images are merged into 'other'")
    image_size: int = Field(96, ge=32, le=1024)
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)

    @field_validator("weights")
    @classmethod
    def _weights_known(cls, value: str) -> str:
        if value in ("none", "imagenet"):
            return value
        if not Path(value).is_file():
            raise ValueError(f"must be 'none', 'imagenet' or the path of an existing state dict file, got {value!r}")
        return value


class SiameseParams(Block):
    image_size: int = Field(64, ge=32, le=1024)
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-4, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    head_hidden: int = Field(256, ge=1)


class EvaluateParams(Block):
    batch_size: int = Field(32, ge=1)


class Params(Block):
    seed: int = Field(42, ge=0)
    ingest: IngestParams
    generate: GenerateParams = GenerateParams()
    describe: DescribeParams = DescribeParams()
    score: ScoreParams = ScoreParams()
    finetune: FinetuneParams = FinetuneParams()
    siamese: SiameseParams = SiameseParams()
    evaluate: EvaluateParams = EvaluateParams()


def parse_params(raw: dict[str, Any]) -> Params:
    """Validate a params mapping; on failure raise ParamsError naming each bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_describe_errors(exc)) from None


def _describe_errors(exc: ValidationError) -> str:
    lines = ["invalid params.yaml:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "<root>"
        got = error.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {key}: {error['msg']}{shown}")
    return "\n".join(lines)
