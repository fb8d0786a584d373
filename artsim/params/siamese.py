"""Block `siamese`: the siamese ResNet-50 that regresses the descriptor score."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from artsim.params.base import RUN_ONLY, CacheFolder, unused_input, user_cache_when_null
from artsim.params.training import TRUNK_STAGES, LearningRecipe, TrainingRun, TrunkStage


class SiameseParams(TrainingRun, LearningRecipe):
    image_size: int = Field(64, ge=32, le=1024)
    # Everything below the lowest trained stage is frozen, and its features are computed
    # once per unique image and cached in feature_cache. "all" by default: at a collection's
    # scale a trunk trained whole finds far more sources (README, "Training for retrieval and
    # robustness"); [layer4] is the cheaper, cached alternative.
    train_layers: Literal["all"] | list[TrunkStage] = "all"
    feature_cache: Annotated[CacheFolder, user_cache_when_null("features")] = Field(
        None,
        validate_default=True,
        description="frozen-trunk features by image and weights, outside every DVC output; null = the user cache",
        json_schema_extra=RUN_ONLY,
    )
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(16, ge=1, description="pairs per optimiser step, over all ranks")
    lr: float = Field(3e-4, gt=0.0)
    trunk_lr_scale: float = Field(0.1, gt=0.0, le=1.0, description="the trained trunk stages learn at lr x this")
    weight_decay: float = Field(1e-4, ge=0.0)
    head_hidden: int = Field(256, ge=1)
    # As SSCD, the copy-detection descriptor: GeM-pooled layer4 projected to 512 and L2 normalised; a
    # quarter of the bytes a search scans beside the 2048 pooled features.
    embedding_dim: int | None = Field(
        512, ge=8, le=2048,
        description="width of the L2-normalised embedding projected from the 2048 GeM-pooled trunk features; "
        "null = no projection (the 2048 pooled features)",
    )
    # A file is named here, a DVC dep in dvc.yaml (inputs/none = unused), as finetune.weights_file.
    trunk_weights_file: Annotated[Path | None, BeforeValidator(unused_input)] = Field(
        None,
        description="a copy detector's state dict in SSCD's torchvision layout (docs/training-at-scale.md, "
        "'A copy-detection start') to start the trunk and projection from, instead of the fine-tuned classifier's",
    )
    # README, "Training for retrieval and robustness": the ranking term at 0.05 helped the sample's
    # regression and steadied it over seeds (and trains the same model under DDP as on one
    # process); altered copies cost R², so they are off.
    rank_weight: float = Field(
        0.05,
        ge=0.0,
        description="weight of the in-batch ranking term beside the MSE (artsim.siamese.ranking); 0 = MSE only",
    )
    rank_candidates: int = Field(
        0,
        ge=0,
        le=4096,
        description=(
            "train originals beyond the batch's own that the ranking term ranks each positive against, "
            "drawn per global batch"
        ),
    )
    augment_copies: int = Field(
        0, ge=0, le=16, description="altered copies of each train variant (artsim.learn.augment); 0 = none"
    )
    augment_prob: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description=(
            "chance that a train image (original or variant, each on its own) is altered in an epoch by a chain "
            "of the training alterations (artsim.learn.augment); 0 = never. Needs train_layers: all"
        ),
    )
    rank_queue: int = Field(
        0,
        ge=0,
        le=65536,
        description=(
            "embeddings of the last originals ranked against (detached), ranked against each positive "
            "as well (artsim.siamese.ranking); 0 = none. Needs rank_weight > 0"
        ),
    )
    spread_weight: float = Field(
        0.0,
        ge=0.0,
        description="weight of the spreading (KoLeo entropy) term on the batch's originals' embeddings; 0 = none",
    )

    @model_validator(mode="after")
    def _terms_have_what_they_need(self) -> "SiameseParams":
        if self.augment_prob > 0 and self.train_layers != "all":
            raise ValueError(
                f"augment_prob {self.augment_prob} needs train_layers: all (allowed with {self.train_layers!r}: "
                "augment_prob 0; the frozen stages' features are cached unaltered, use augment_copies instead)")
        if self.rank_queue > 0 and self.rank_weight == 0:
            raise ValueError(
                f"rank_queue {self.rank_queue} needs rank_weight > 0 (the queue's entries are ranking negatives); "
                "allowed with rank_weight 0: rank_queue 0")
        return self

    @field_validator("trunk_weights_file")
    @classmethod
    def _trunk_weights_readable(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        if value.suffix not in (".safetensors", ".pth", ".pt") or not value.is_file():
            raise ValueError(
                "must be inputs/none or an existing state dict file (.safetensors, .pth or .pt; "
                f"docs/training-at-scale.md, 'A copy-detection start'), got {str(value)!r}")
        return value

    @field_validator("train_layers")
    @classmethod
    def _top_run_of_stages(cls, value: str | list[str]) -> str | list[str]:
        if value == "all":
            return value
        indices = sorted(TRUNK_STAGES.index(name) for name in value)
        if len(set(indices)) != len(indices) or (indices and indices != list(range(indices[0], len(TRUNK_STAGES)))):
            raise ValueError(
                "must be 'all' or a top run of consecutive trunk stages ending at layer4, e.g. [layer4] or "
                f"[layer3, layer4] ([] trains the head only); stages: {', '.join(TRUNK_STAGES)}; got {value!r}"
            )
        return [TRUNK_STAGES[i] for i in indices]

