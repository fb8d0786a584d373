"""Block `finetune`: the style (or genre) classifier fine-tuned from a ResNet-50."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from artsim.params.base import unused_input
from artsim.params.training import LearningRecipe, TrainingRun


class FinetuneParams(TrainingRun, LearningRecipe):
    weights: str = "none"
    # A state dict file is named here, a DVC dep in dvc.yaml; it stands for `weights`.
    weights_file: Annotated[Path | None, BeforeValidator(unused_input)] = Field(
        None, description="a state dict file to start from"
    )

    @model_validator(mode="before")
    @classmethod
    def _weights_file_stands_for_weights(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or unused_input(raw.get("weights_file")) is None:
            return raw
        if raw.get("weights", "none") != "none":
            raise ValueError(
                "set finetune.weights (none | imagenet) or finetune.weights_file (a state dict file), not both"
            )
        return {**raw, "weights": str(raw["weights_file"])}
    label: Literal["style", "genre"] = "style"
    min_class_size: int = Field(2, ge=1, description="classes with fewer train images are merged into 'other'")
    image_size: int = Field(96, ge=32, le=1024)
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(16, ge=2, description="images per optimiser step, over all ranks (BatchNorm needs two)")
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

