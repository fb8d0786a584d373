"""Backend `sdxl`: diffusers' StableDiffusionXLImg2ImgPipeline (the study used SDXL Refiner 1.0).

The pipeline comes from `from_pretrained` (a hub id or a `save_pretrained` folder), runs in
fp16/bf16 on a GPU and fp32 on a CPU, attends with PyTorch's scaled-dot-product attention
(diffusers' default processor on torch 2), and may swap in a fast VAE (TAESD-XL loads as
an `AutoencoderTiny`) or offload idle sub-models to the CPU (`enable_model_cpu_offload`).
Every variant draws its noise from its own CPU generator seeded from its key, so a variant
is the same whatever batch, process or GPU makes it.
"""
from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from artsim.core.distributed import Ranks
from artsim.core.hub import looks_like_hub_id
from artsim.core.images import ImageFile, load_rgb
from artsim.generate.backends import register
from artsim.generate.backends.base import InputError, ItemFailure, Output, ParamsProblem, Plan
from artsim.generate.prompts import missing_columns, render_prompt
from artsim.generate.variants import Variant, variant_key, variant_seed, weights_identity
from artsim.params import DEFAULT_MODELS, REFINER, REFINER_REVISION, GenerateParams

log = logging.getLogger(__name__)

BACKEND = "sdxl"
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class _UpcastNoise(logging.Filter):
    """Drops diffusers' "modules ... should be kept in float32: []" warning.

    The img2img pipeline casts an fp16 VAE with `force_upcast` (the refiner's) to fp32 and
    back on every batch, and diffusers warns on each cast even when the list of such modules
    is empty: one line per batch, thousands per run, saying nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


logging.getLogger("diffusers.models.modeling_utils").addFilter(_UpcastNoise())


def resolve_device(device: str, local_rank: int = 0) -> str:
    """`auto` and `cuda` become this rank's GPU (`cuda:<local rank>`), or the CPU when none is visible."""
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto":
        return f"cuda:{local_rank % available}" if available else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank % max(available, 1)}"
    if device.startswith("cuda"):
        index = int(device.split(":")[1])
        if index >= available:
            raise InputError(f"generate.device: {device} asked for, but {available} CUDA device(s) are visible")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """`auto` is fp16 on a GPU and fp32 on a CPU (half precision on a CPU is slow or unsupported)."""
    if dtype == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if dtype != "fp32" and not device.startswith("cuda"):
        raise InputError(f"generate.dtype: {dtype} needs a GPU, but generate.device resolved to {device}")
    return dtype


def fit_size(width: int, height: int, resolution: int, multiple: int) -> tuple[int, int]:
    """The size an original is resized to: long side `resolution`, aspect kept, both sides
    rounded to `multiple` (the pipeline's VAE x UNet down-sampling, 64 for SDXL)."""
    scale = resolution / max(width, height)

    def snap(side: float) -> int:
        return max(multiple, int(round(side * scale / multiple)) * multiple)

    return snap(width), snap(height)


def plan_sdxl(originals: pd.DataFrame, config: GenerateParams, seed: int, backend: "SdxlBackend") -> list[Variant]:
    """One variant per (original, strength), in a stable order, each with its prompt and size."""
    variants = []
    for row in sorted(originals.to_dict("records"), key=lambda r: r["id"]):
        prompt = render_prompt(config.prompt, row)
        negative_prompt = render_prompt(config.negative_prompt, row)
        size = fit_size(int(row["width"]), int(row["height"]), config.resolution, backend.multiple)
        for strength in config.strengths:
            key = variant_key({
                **backend.recipe,
                "original": row["hash"],
                "prompt": prompt,
                "negative_prompt": negative_prompt,
                "strength": float(strength),
                "seed": seed,
            })
            variants.append(Variant(
                key=key,
                original_id=row["id"],
                strength=float(strength),
                backend=BACKEND,
                model=config.model,
                seed=variant_seed(key),
                prompt=prompt,
                negative_prompt=negative_prompt,
                size=size,
            ))
    return variants


class SdxlBackend:
    def __init__(self, config: GenerateParams, originals: Mapping[str, ImageFile], device: str) -> None:
        import torch
        from diffusers import AutoModel, StableDiffusionXLImg2ImgPipeline

        self.config = config
        self.originals = originals
        self.device = device
        self.dtype = resolve_dtype(config.dtype, device)
        torch_dtype = getattr(torch, TORCH_DTYPES[self.dtype])
        # No invisible watermark: it would alter pixels depending on whether an optional
        # package happens to be installed, and the similarity study measures pixels.
        components: dict[str, Any] = {"dtype": torch_dtype, "add_watermarker": False}
        if config.vae:
            # AutoModel reads the class from the folder's config: AutoencoderTiny for TAESD-XL,
            # AutoencoderKL for e.g. an fp16-safe SDXL VAE.
            components["vae"] = AutoModel.from_pretrained(config.vae, dtype=torch_dtype)
        if looks_like_hub_id(config.model):
            # The pinned commit, not whatever the hub repository holds today (a folder has none).
            components["revision"] = config.revision
        log.info("loading %s (%s on %s)", config.model, self.dtype, device)
        pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(config.model, **components)
        if config.cpu_offload:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)  # one progress bar over variants, not one per batch
        self.pipe = pipe
        self.multiple = pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
        # The recipe shared by all variants of this run (see artsim.generate.variants).
        self.recipe = {
            "backend": BACKEND,
            "model": weights_identity(config.model, config.revision),
            "vae": weights_identity(config.vae),
            "dtype": self.dtype,
            "steps": config.steps,
            "guidance_scale": config.guidance_scale,
            "aesthetic_score": config.aesthetic_score,
            "negative_aesthetic_score": config.negative_aesthetic_score,
            "resolution": config.resolution,
            "jpeg_quality": config.jpeg_quality,
        }
        self.pipeline_seconds = 0.0  # time inside pipeline calls, for the overhead benchmark

    def load(self, variant: Variant) -> Image.Image:
        image = load_rgb(self.originals[variant.original_id])
        if variant.size is not None and image.size != variant.size:
            image = image.resize(variant.size, Image.Resampling.LANCZOS)
        return image

    def batch_group(self, variant: Variant) -> Hashable:
        # One pipeline call takes one strength and stacks its images into one tensor.
        return (variant.size, variant.strength)

    def render(self, variants: Sequence[Variant], inputs: Sequence[Image.Image]) -> list[Output]:
        import torch

        config = self.config
        negative = [v.negative_prompt for v in variants] if any(v.negative_prompt for v in variants) else None
        start = time.perf_counter()
        result = self.pipe(
            prompt=[v.prompt for v in variants],
            negative_prompt=negative,
            image=list(inputs),
            strength=variants[0].strength,
            num_inference_steps=config.steps,
            guidance_scale=config.guidance_scale,
            aesthetic_score=config.aesthetic_score,
            negative_aesthetic_score=config.negative_aesthetic_score,
            # CPU generators: the same noise on every device, so a variant does not depend on the GPU.
            generator=[torch.Generator("cpu").manual_seed(v.seed) for v in variants],
            output_type="np",
        )
        self.pipeline_seconds += time.perf_counter() - start
        return [_to_image(array) for array in result.images]

    def recover(self) -> None:
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _to_image(array: np.ndarray) -> Output:
    """A float HxWx3 array in [0, 1] as an image; NaN or all-black output is a failure, not a picture.

    An fp16 VAE that overflows decodes to NaN, which the usual uint8 conversion turns into a
    black image that would silently enter the study.
    """
    if not np.isfinite(array).all():
        return ItemFailure(
            "nan_image",
            "non-finite pixels (fp16 VAE overflow?); an fp16-safe generate.vae or dtype bf16/fp32 avoids it",
        )
    if float(array.max()) <= 0.0:
        return ItemFailure("nan_image", "all-black output")
    return Image.fromarray((np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8))


class Sdxl:
    """The registry's entry for backend `sdxl`."""

    name = BACKEND

    def check_params(self, config: GenerateParams) -> list[ParamsProblem]:
        if config.model == DEFAULT_MODELS["style_transfer"]:
            return [
                (
                    "model",
                    f"backend sdxl needs a diffusers model: a hub id such as {DEFAULT_MODELS[BACKEND]!r} or a folder "
                    f"written by save_pretrained (null = that default) (got {config.model!r})",
                )
            ]
        if config.revision == REFINER_REVISION and config.model != REFINER and looks_like_hub_id(config.model):
            return [
                (
                    "revision",
                    f"the default is the commit of {REFINER}; give the commit (or main) of {config.model} "
                    f"(got {config.revision!r})",
                )
            ]
        return []

    def check_inputs(self, config: GenerateParams, originals: pd.DataFrame) -> None:
        absent = missing_columns([config.prompt, config.negative_prompt], originals.columns)
        if absent:
            field_name = "prompt" if missing_columns([config.prompt], originals.columns) else "negative_prompt"
            raise InputError(
                f"generate.{field_name}: uses {{{absent[0]}}}, but the ingested manifest has no {absent[0]} column"
            )
        for key, name in (("model", config.model), ("vae", config.vae)):
            if (
                name
                and Path(name).exists()
                and not (Path(name) / ("model_index.json" if key == "model" else "config.json")).is_file()
            ):
                raise InputError(f"generate.{key}: {name} is a folder but not one written by save_pretrained")

    def open(self, config: GenerateParams, originals: Mapping[str, ImageFile], ranks: Ranks) -> SdxlBackend:
        return SdxlBackend(config, originals, resolve_device(config.device, ranks.local_rank))

    def plan(self, config: GenerateParams, originals: pd.DataFrame, seed: int, renderer: SdxlBackend) -> Plan:  # type: ignore[override]
        return Plan(plan_sdxl(originals, config, seed, renderer))


register(Sdxl())
