"""Image-to-image variants of each original painting: resumable, incremental, shardable.

A variant is named by a key over everything that determines it (`variants`); finished
variants live in a content-addressed store outside the DVC output (`store`), so a crash, a
widened strength sweep or a rerun on more GPUs computes only the keys the store lacks
(`run`, sharded over torchrun ranks by `distributed`), and the stage output is assembled
from the store (`assemble`).

Backends, one module each: `style_transfer` (offline CPU default), `sdxl` (diffusers SDXL
Refiner img2img) and `importer` (adopt variants generated elsewhere). `prompts` renders
prompt and file-name templates over painting metadata; `tiny` builds a weightless,
SDXL-refiner-shaped pipeline for tests and benchmarks.

This package module stays import-light: `artsim.config` reads DEFAULT_MODELS from it.
"""
from __future__ import annotations

REFINER = "stabilityai/stable-diffusion-xl-refiner-1.0"

# The model a backend uses when `generate.model` is null. `import` records this as the
# model that made the adopted images (the published WikiArt variants are refiner outputs).
DEFAULT_MODELS: dict[str, str] = {
    "style_transfer": "magenta-arbitrary",
    "sdxl": REFINER,
    "import": REFINER,
}
