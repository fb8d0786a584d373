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

This package module stays import-light: `artsim.params` reads DEFAULT_MODELS from it.
"""
from __future__ import annotations

import re
from pathlib import Path

REFINER = "stabilityai/stable-diffusion-xl-refiner-1.0"
# The hub commit of SDXL Refiner 1.0 that `generate.revision` pins by default (a hub id alone
# names whatever the repository holds today).
REFINER_REVISION = "5d4cfe854c9a9a87939ff3653551c2b3c99a4356"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")

# The model a backend uses when `generate.model` is null. `import` records this as the
# model that made the adopted images (the published WikiArt variants are refiner outputs).
DEFAULT_MODELS: dict[str, str] = {
    "style_transfer": "magenta-arbitrary",
    "sdxl": REFINER,
    "import": REFINER,
}


def looks_like_hub_id(name: str | None) -> bool:
    """Whether `name` names a hub repository ("owner/name") rather than a local folder."""
    return bool(name) and not Path(name).exists() and HUB_ID.fullmatch(name) is not None  # type: ignore[arg-type]
