"""Image-to-image variants of each original painting: resumable, incremental, shardable.

A variant is named by a key over everything that determines it (`variants`); finished
variants live in a content-addressed store outside the DVC output (`store`), so a crash, a
widened strength sweep or a rerun on more GPUs computes only the keys the store lacks
(`run`, sharded over torchrun ranks by `distributed`), and the stage output is assembled
from the store (`assemble`).

Backends, one module each under `backends/`, registered by name in `backends.BACKENDS`:
`style_transfer` (offline CPU default), `sdxl` (diffusers SDXL Refiner img2img) and
`importer` (adopt variants generated elsewhere). `prompts` renders prompt and file-name
templates over painting metadata.
"""
from __future__ import annotations

from artsim.core.hub import HUB_ID, looks_like_hub_id
from artsim.params.generate import DEFAULT_MODELS, REFINER, REFINER_REVISION

__all__ = ["DEFAULT_MODELS", "HUB_ID", "REFINER", "REFINER_REVISION", "looks_like_hub_id"]
