"""params.yaml `index`: the search index of the workspace's originals (stage index, artsim.index)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IndexParams(BaseModel):
    # The other blocks' base (artsim.params.Block) lives in artsim.params itself, which imports this module.
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Embeddings are per image in eval mode, so the batch only says how many images are decoded and
    # embedded at once: run-only, like evaluate.batch_size.
    batch_size: int = Field(32, ge=1, le=1024, description="originals embedded per batch", json_schema_extra={"run_only": True})
