"""Block `evaluate`: how the test images are embedded (run-only keys), how far the retrieval ranks, how many held-out
variants the costly parts sample (SSIM's ranking and the transformed set; fused's calibration), and how many unrelated
originals each held-out variant is judged against (the verdict's negatives)."""
from __future__ import annotations

from pydantic import Field

from artsim.params.base import RUN_ONLY, Block

# As many as `artsim search` re-ranks by default (artsim.index.DEFAULT_SHORTLIST; params import no index code).
DEFAULT_EVALUATE_SHORTLIST = 100
# Unrelated originals per held-out variant: the held-out pairs grow as queries x (this + 1), not queries x collection.
DEFAULT_NEGATIVES_PER_QUERY = 100


class EvaluateParams(Block):
    batch_size: int = Field(32, ge=1, json_schema_extra=RUN_ONLY)
    loader_workers: int = Field(
        0, ge=0, le=64, description="DataLoader workers for embedding the test images", json_schema_extra=RUN_ONLY
    )
    shortlist: int = Field(
        DEFAULT_EVALUATE_SHORTLIST,
        ge=1,
        description="candidates per query that the model's head, the descriptor score and SSIM score exactly "
                    "(each query's shortlist by a vector proxy); at least the collection's size ranks every one",
    )
    max_sampled_queries: int | None = Field(
        2000,
        ge=1,
        description="held-out variants SSIM ranks and the transformed set alters (seeded sample); null = all",
    )
    calibration_max_queries: int | None = Field(
        2000,
        ge=1,
        description="val variants fused's calibration is fitted on, plain and under each alteration (seeded "
                    "sample); null = all",
    )
    negatives_per_query: int | None = Field(
        DEFAULT_NEGATIVES_PER_QUERY, ge=1, description="unrelated originals each held-out variant is paired with for "
        "the thresholds and the calibration (a seeded sample where the collection has more; at least the collection's "
        "size, or null: every original that is not its source)"
    )
