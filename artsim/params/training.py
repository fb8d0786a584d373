"""What both training stages (finetune, siamese) share: how a run runs and how the weights move."""
from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from artsim.params.base import RUN_ONLY, Block, Processes

Precision = Literal["auto", "fp32", "bf16", "fp16"]
# A ResNet trunk's stages from the input up; `siamese.train_layers` names a top run of them.
TrunkStage = Literal["stem", "layer1", "layer2", "layer3", "layer4"]
TRUNK_STAGES: tuple[str, ...] = get_args(
    TrunkStage
)  # the one list of them (artsim.learn.features builds them by these names)


class TrainingRun(Block):
    """How a training stage runs (not what it learns): on GPUs only, and never on a CPU."""

    precision: Precision = Field(
        "fp32", description="autocast on GPU; auto = bf16 where supported, else fp16; CPU runs stay fp32"
    )
    channels_last: bool = False
    loader_workers: int = Field(
        0, ge=0, le=64, description="DataLoader worker processes per rank", json_schema_extra=RUN_ONLY
    )
    processes: Processes = Field(
        1,
        description="ranks on this machine (relaunch under torchrun); 'auto' = one per GPU",
        json_schema_extra=RUN_ONLY,
    )


class LearningRecipe(Block):
    """How the weights move, in both training stages (artsim.learn.training.follow_recipe).

    On a few images, full-size first steps, a last epoch still at full rate and an epoch
    picked by a handful of validation images turn float rounding, which differs between
    CPUs, into different models; bench/seeds.py measures how close these keep two machines.
    """

    warmup: float = Field(
        0.25,
        ge=0.0,
        lt=1.0,
        description="fraction of the steps over which the lr rises linearly, before a cosine decay",
    )
    grad_clip: float | None = Field(
        1.0, gt=0.0, description="clip the gradient norm to this before each step; null = no clipping"
    )
    select_epoch: Literal["last", "best_val"] = Field(
        "last", description="keep the last epoch's weights, or those of the epoch that did best on val")

