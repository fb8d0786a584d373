"""Block `evaluate`: how the test images are embedded (run-only keys)."""
from __future__ import annotations

from pydantic import Field

from artsim.params.base import RUN_ONLY, Block


class EvaluateParams(Block):
    batch_size: int = Field(32, ge=1, json_schema_extra=RUN_ONLY)
    loader_workers: int = Field(
        0, ge=0, le=64, description="DataLoader workers for embedding the test images", json_schema_extra=RUN_ONLY
    )
