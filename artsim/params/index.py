"""params.yaml `index`: the search index of the workspace's originals (stage index, artsim.index)."""
from __future__ import annotations

from pydantic import Field

from artsim.params.base import RUN_ONLY, Block


class IndexParams(Block):
    # Embeddings are per image in eval mode, so the batch only says how many images are decoded and
    # embedded at once: run-only, like evaluate.batch_size.
    batch_size: int = Field(32, ge=1, le=1024, description="originals embedded per batch", json_schema_extra=RUN_ONLY)
