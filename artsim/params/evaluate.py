"""Block `evaluate`: how the test images are embedded (run-only keys), and how many unrelated originals each
held-out variant is judged against (the verdict's negatives)."""
from __future__ import annotations

from pydantic import Field

from artsim.params.base import RUN_ONLY, Block


class EvaluateParams(Block):
    batch_size: int = Field(32, ge=1, json_schema_extra=RUN_ONLY)
    loader_workers: int = Field(
        0, ge=0, le=64, description="DataLoader workers for embedding the test images", json_schema_extra=RUN_ONLY
    )
    negatives_per_query: int | None = Field(
        None, ge=1, description="unrelated originals each held-out variant is paired with for the thresholds and "
        "the calibration (a seeded sample); null: every original that is not its source"
    )
