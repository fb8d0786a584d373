"""Block `generate`: which backend makes the variants, with what, and where finished ones are kept.

The backend names and their default models are the keys' allowed values and defaults, so they
live here; tests/test_layout.py keeps them in step with artsim.generate.backends.BACKENDS.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from artsim.params.base import RUN_ONLY, Block, CacheFolder, Processes, unused_input, user_cache_when_null

REFINER = "stabilityai/stable-diffusion-xl-refiner-1.0"
# The hub commit of SDXL Refiner 1.0 that `generate.revision` pins by default (a hub id alone
# names whatever the repository holds today).
REFINER_REVISION = "5d4cfe854c9a9a87939ff3653551c2b3c99a4356"

# The model a backend uses when `generate.model` is null. `import` records this as the
# model that made the adopted images (the published WikiArt variants are refiner outputs).
DEFAULT_MODELS: dict[str, str] = {
    "style_transfer": "magenta-arbitrary",
    "sdxl": REFINER,
    "import": REFINER,
}
BackendName = Literal["style_transfer", "sdxl", "import"]


class GenerateParams(Block):
    """Block `generate`: which backend makes the variants, with what, and where finished ones are kept.

    Keys that only say how to run (batch_size, device, processes, cpu_offload, store) do not
    change a variant: they are RUN_ONLY, no params deps, so changing one reruns nothing.
    Validators that look at other keys get pydantic's ValidationInfo as `info`: `info.data`
    holds the keys declared above their own, so the order of the fields matters.

    What only one backend cares about (its model, prompt and file-name templates, the import
    folder) is checked by that backend (`artsim.generate.backends`, `Backend.check_params`),
    which the generate stage calls before any work: so editing such a check reruns generate only.
    """

    backend: BackendName = "style_transfer"
    # None picks the backend's default (see DEFAULT_MODELS); validate_default fills it in.
    model: str | None = Field(None, validate_default=True)
    # A hub id names a moving repository; the commit pins it (ignored for a local folder,
    # which its content fingerprint keys instead).
    revision: str = Field(
        REFINER_REVISION,
        pattern=r"^\S+$",
        validate_default=True,
        description="hub commit (or branch/tag) of a hub model",
    )
    strengths: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], min_length=1)
    max_side: int = Field(256, ge=32, le=4096, description="style_transfer: long side of the variants")
    jpeg_quality: int = Field(95, ge=50, le=100)
    store: Annotated[CacheFolder, user_cache_when_null("variants")] = Field(
        None,
        validate_default=True,
        description="finished variants, outside every DVC output; null = the user cache",
        json_schema_extra=RUN_ONLY,
    )
    # sdxl
    prompt: str = "{title}, {genre} by {artist}, {style}, {year}"
    negative_prompt: str = ""
    steps: int = Field(25, ge=1, le=1000)
    guidance_scale: float = Field(7.5, ge=0.0, le=50.0)
    aesthetic_score: float = Field(6.0, ge=0.0, le=10.0)
    negative_aesthetic_score: float = Field(2.5, ge=0.0, le=10.0)
    resolution: int = Field(1024, ge=16, le=4096, description="sdxl: long side, rounded to the model's multiple")
    vae: str | None = None
    # Local folders are named by these keys, DVC deps in dvc.yaml (changing a file reruns the
    # stage); each stands for `model` / `vae` (see _local_folders_stand_for_models).
    model_dir: Annotated[Path | None, BeforeValidator(unused_input)] = Field(
        None, description="a save_pretrained pipeline folder"
    )
    vae_dir: Annotated[Path | None, BeforeValidator(unused_input)] = Field(
        None, description="a save_pretrained VAE folder"
    )
    batch_size: int = Field(4, ge=1, le=256, json_schema_extra=RUN_ONLY)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", json_schema_extra=RUN_ONLY)
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    cpu_offload: bool = Field(False, json_schema_extra=RUN_ONLY)
    processes: Processes = Field(
        1, description="ranks on this machine; 'auto' = one per visible GPU", json_schema_extra=RUN_ONLY
    )
    # import
    import_dir: Annotated[Path | None, BeforeValidator(unused_input)] = Field(None, validate_default=True)
    import_template: str = Field("{style}/{stem}_resize768_generated.jpg", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _local_folders_stand_for_models(cls, raw: Any) -> Any:
        # Before the field validators: `model` must hold the folder when its default is filled in.
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        for folder_key, key in (("model_dir", "model"), ("vae_dir", "vae")):
            folder = unused_input(raw.get(folder_key))
            if folder is None:
                continue
            if raw.get(key) is not None:
                raise ValueError(f"set generate.{key} (a hub id) or generate.{folder_key} (a local folder), not both")
            if not Path(folder).is_dir():
                raise ValueError(f"generate.{folder_key}: {folder} is not a folder")
            raw[key] = str(folder)
        return raw

    @field_validator("model")
    @classmethod
    def _backends_model_when_null(cls, value: str | None, info: Any) -> str:
        return DEFAULT_MODELS[info.data.get("backend", "style_transfer")] if value is None else value

    @field_validator("strengths")
    @classmethod
    def _strengths_in_unit_interval(cls, values: list[float]) -> list[float]:
        if any(not 0.0 < v <= 1.0 for v in values):
            raise ValueError("every strength must be in (0, 1]")
        if len(set(values)) != len(values):
            raise ValueError("strengths must not repeat")
        return values

    @field_validator("steps")
    @classmethod
    def _every_strength_gets_a_step(cls, value: int, info: Any) -> int:
        # img2img runs int(steps * strength) denoising steps; zero steps is an error in diffusers.
        too_weak = [s for s in info.data.get("strengths", []) if int(value * s) < 1]
        if too_weak:
            weakest = min(too_weak)
            needed = next(n for n in range(value, 100_000) if int(n * weakest) >= 1)
            raise ValueError(f"steps={value} gives no denoising step at strength {weakest}; need steps >= {needed}")
        return value

    @field_validator("dtype")
    @classmethod
    def _half_precision_needs_a_gpu(cls, value: str, info: Any) -> str:
        if value in ("fp16", "bf16") and info.data.get("device") == "cpu":
            raise ValueError(f"{value} needs a GPU; use fp32 (or auto) with device cpu")
        return value

    @field_validator("cpu_offload")
    @classmethod
    def _offload_needs_a_gpu(cls, value: bool, info: Any) -> bool:
        if value and info.data.get("device") == "cpu":
            raise ValueError("model CPU offload moves models to a GPU when used; it needs device auto or cuda")
        return value
