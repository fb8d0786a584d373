"""Block `score`: the weight of each descriptor in the score, and the pairs scored."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, RootModel, WrapValidator, model_validator

from artsim.params.base import Block

# The descriptor candidates of artsim.describe.registry' registry, in its order (it checks that they
# agree at import); a copy here so that params validate without importing OpenCV.
DESCRIPTOR_NAMES = ("color", "texture", "edges", "lab", "lbp", "orientation", "phash", "layout")
# The default target: the descriptor study's `fit` on the embedded sample's train pairs, rounded
# to two decimals (sums to 1; lbp's 0.005 rounds away). README, "The descriptor study".
DEFAULT_SCORE_WEIGHTS = {"layout": 0.34, "phash": 0.21, "edges": 0.12, "orientation": 0.11, "lab": 0.09,
                         "color": 0.07, "texture": 0.06}
# The three-descriptor score (colour, texture, edges), the documented alternative; evaluate and
# the score report show these three per descriptor beside the weighted score.
CLASSIC_SCORE_WEIGHTS = {"color": 0.4, "texture": 0.3, "edges": 0.3}
Weight = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class ScoreWeights(RootModel[dict[str, Weight]]):
    """Weight of each descriptor candidate in the score: exactly the named ones (others weigh 0).

    `ScoreWeights(color=1.0, lbp=0.5)` or `ScoreWeights({"color": 1.0})`; no argument: the default."""

    model_config = ConfigDict(frozen=True)
    root: dict[str, Weight] = Field(default_factory=lambda: dict(DEFAULT_SCORE_WEIGHTS))

    @model_validator(mode="after")
    def _known_and_not_all_zero(self) -> "ScoreWeights":
        unknown = sorted(set(self.root) - set(DESCRIPTOR_NAMES))
        if unknown:
            raise ValueError(
                f"unknown descriptor {', '.join(map(repr, unknown))}; allowed: {', '.join(DESCRIPTOR_NAMES)}"
            )
        if sum(self.root.values()) <= 0:
            raise ValueError(f"at least one weight must be positive (descriptors: {', '.join(DESCRIPTOR_NAMES)})")
        return self

    def as_dict(self) -> dict[str, float]:
        return dict(self.root)


def _fit_or_weights(value: Any, handler: Any) -> "ScoreWeights | Literal['fit']":
    # Validated by hand rather than as a union, so that an error names score.weights.<name>, not a union member.
    if isinstance(value, str):
        if value == "fit":
            return value
        raise ValueError(f"must be 'fit' or a mapping of descriptor to weight ({', '.join(DESCRIPTOR_NAMES)})")
    return value if isinstance(value, ScoreWeights) else ScoreWeights.model_validate(value)


class ScoreParams(Block):
    weights: Annotated[ScoreWeights | Literal["fit"], WrapValidator(_fit_or_weights)] = Field(
        default_factory=ScoreWeights,
        description="descriptor -> weight, or 'fit': learned on the train pairs (artsim.score.fit)")
    negatives: int = Field(1, ge=0, le=100, description="negative pairs per positive pair")
    study_queries: int = Field(
        2000,
        ge=1,
        description="held-out (val/test) variants whose source the descriptor study looks for among all originals",
    )
    study_shortlist: int = Field(
        1000,
        ge=1,
        description="originals per study query re-ranked with the exact kernels, the nearest by a vector proxy "
                    "(all of them when the collection is no larger: the full ranking)",
    )
