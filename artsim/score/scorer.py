"""The descriptor score outside the pipeline: everything it needs, saved as one JSON file.

The score stage writes `data/pairs/descriptor_score.json` (describe params, the weights the
score used -- given in params.yaml or fitted on the train pairs -- and the texture statistics
fitted on the train originals); the siamese stage copies it beside the model, so that
`artsim.load(...)` scores a pair exactly as `pairs.parquet` did (the same kernels,
artsim.score.similarity), and the evaluate stage ranks with the texture statistics saved here
instead of fitting them again. An image is described by the descriptors the weights name
(zero weights included), so the similarities shown are the score's parts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from artsim.core.images import resize_long_side
from artsim.describe.registry import describe_array
from artsim.describe.table import Descriptors
from artsim.describe.texture import HARALICK_FEATURES
from artsim.params import DescribeParams, ScoreWeights
from artsim.score.similarity import TextureStats, descriptor_similarities, weighted_score

FILE_NAME = "descriptor_score.json"
FORMAT_VERSION = 1


class DescriptorScoreFileError(ValueError):
    """descriptor_score.json is missing a field or holds values that cannot be used."""


@dataclass(frozen=True)
class DescriptorScorer:
    """Describe params, weights and texture stats: the descriptor score of any two images."""

    describe: DescribeParams
    weights: ScoreWeights
    texture: TextureStats

    def describe_image(self, image: Image.Image) -> Descriptors:
        """Descriptors of an RGB image, resized as the describe stage resizes its files."""
        return describe_array(np.asarray(resize_long_side(image, self.describe.size), dtype=np.uint8), self.describe,
                              names=self.weights.as_dict())

    def similarities(self, a: Descriptors, b: Descriptors) -> dict[str, float]:
        return descriptor_similarities(a, b, self.texture)

    def score(self, similarities: dict[str, float]) -> float:
        return weighted_score(similarities, self.weights)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "describe": self.describe.model_dump(mode="json"),
            "weights": self.weights.as_dict(),
            "texture_stats": self.texture.as_dict(),
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, raw: Any) -> "DescriptorScorer":
        """Validated: a damaged or hand-edited file fails here, naming what is wrong."""
        try:
            stats = raw["texture_stats"]
            mean, std = (np.asarray(stats[k], dtype=np.float64) for k in ("mean", "std"))
            describe, weights = (
                DescribeParams.model_validate(raw["describe"]),
                ScoreWeights.model_validate(raw["weights"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DescriptorScoreFileError(f"{FILE_NAME}: {type(exc).__name__}: {exc}") from None
        if (
            mean.shape != (HARALICK_FEATURES,)
            or std.shape != mean.shape
            or not (np.isfinite(mean).all() and (std > 0).all())
        ):
            raise DescriptorScoreFileError(
                f"{FILE_NAME}: texture_stats must be {HARALICK_FEATURES} finite means and positive stds"
            )
        return cls(describe, weights, TextureStats(mean=mean, std=std))

    @classmethod
    def load(cls, path: Path) -> "DescriptorScorer":
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DescriptorScoreFileError(f"{path}: {exc}") from None
        return cls.from_dict(raw)
