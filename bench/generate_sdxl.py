"""Per-image cost of the sdxl backend, and the share of it spent outside the pipeline call.

For each batch size (1, 4, 8) it makes every variant of N synthetic originals (JPEGs the size
ingest writes) into a fresh store through the stage's own code path (planning and key
hashing, loading and resizing in the prefetch thread, the pipeline, JPEG encoding + fsync in
the writer thread, assembling data/generated) and reports seconds per image and the
fraction of wall time outside pipeline calls. Model loading is reported apart (paid once
per run). Budget: under 10% outside the pipeline at batch 8.

    .venv/bin/python bench/generate_sdxl.py                        # tiny refiner built in code, CPU
    python bench/generate_sdxl.py --model stabilityai/stable-diffusion-xl-refiner-1.0 \
        --device cuda --resolution 1024 --images 64                # the real refiner on a GPU
    python bench/generate_sdxl.py --paper --model <hub id or folder> --resolution 1024
                                                                   # FLOPs per image, from the configs only
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported; the table is the output

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from artsim.generate.assemble import assemble  # noqa: E402
from artsim.generate.backends.sdxl import SdxlBackend, plan_sdxl  # noqa: E402
from artsim.generate.run import GenerationResult, make_batches, run_batches  # noqa: E402
from artsim.generate.store import VariantStore  # noqa: E402
from artsim.params import GenerateParams  # noqa: E402
from tests.support.tiny_sdxl import build_tiny_refiner  # noqa: E402

BUDGET = 0.10


# Dense fp16/bf16 tensor-core peaks (TFLOP/s) for the on-paper estimate.
PEAKS = {"H100 SXM": 989.0, "A100": 312.0, "L40S": 362.0}
EFFICIENCY = 0.4  # a fraction of peak a diffusion UNet sustains with SDPA at batch 4-8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="hub id or save_pretrained folder (default: the tiny refiner, built here)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--vae", help="optional fast VAE (hub id or folder)")
    parser.add_argument(
        "--paper", action="store_true", help="print FLOPs per image and expected GPU throughput, run nothing"
    )
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=64, help="long side fed to the pipeline")
    parser.add_argument(
        "--source-side", type=int, default=512, help="long side of the synthetic originals (ingest.max_side)"
    )
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--strength", type=float, default=0.4)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = args.model or str(build_tiny_refiner(root / "model"))
        if args.paper:
            paper_estimate(model, args.resolution, args.steps, args.strength, guided=True)
            return
        side = args.source_side
        manifest = synthetic_originals(root / "ingested", args.images, side)
        config = GenerateParams(
            backend="sdxl", model=model, resolution=args.resolution, steps=args.steps, strengths=[args.strength],
            device=args.device, dtype=args.dtype, vae=args.vae, store=root / "store",
        )
        start = time.perf_counter()
        backend = SdxlBackend(config, root / "ingested", args.device)
        load_seconds = time.perf_counter() - start
        print(
            f"{args.model or 'tiny refiner'} on {args.device} "
            f"({backend.dtype}, torch threads {torch.get_num_threads()}), "
            f"{args.images} originals of {side}px -> {args.resolution}px, "
            f"{args.steps} steps x strength {args.strength}; "
            f"model load {load_seconds:.2f} s (not counted)"
        )
        run_once(backend, manifest, config, root / "warmup", batch_size=min(args.batch_sizes), limit=2)
        print(f"{'batch':>5} {'s/image':>9} {'pipeline s/image':>17} {'outside ms/image':>17} {'outside share':>14}")
        for batch_size in args.batch_sizes:
            total, inside = run_once(backend, manifest, config, root / f"run-{batch_size}", batch_size)
            share = (total - inside) / total
            verdict = "" if batch_size != 8 else ("  (budget 10%: ok)" if share < BUDGET else "  (budget 10%: OVER)")
            print(
                f"{batch_size:>5} {total / args.images:>9.3f} {inside / args.images:>17.3f} "
                f"{(total - inside) / args.images * 1000:>17.1f} {share:>14.1%}{verdict}"
            )


def paper_estimate(model: str, resolution: int, steps: int, strength: float, guided: bool) -> None:
    """FLOPs of one variant, counted on the meta device from the model's configs (no weights
    are loaded), and what that means on a few GPUs at EFFICIENCY of their peak."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    unet_config = UNet2DConditionModel.load_config(model, subfolder="unet")
    vae_config = AutoencoderKL.load_config(model, subfolder="vae")
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
        vae = AutoencoderKL.from_config(vae_config)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    latent = torch.empty(1, vae.config.latent_channels, resolution // factor, resolution // factor, device="meta")
    text_dim = unet.config.projection_class_embeddings_input_dim - 5 * unet.config.addition_time_embed_dim
    conditions = {"text_embeds": torch.empty(1, text_dim, device="meta"), "time_ids": torch.empty(1, 5, device="meta")}

    def tflop(call) -> float:
        with FlopCounterMode(display=False) as counter:
            call()
        return counter.get_total_flops() / 1e12

    unet_tflop = tflop(
        lambda: unet(
            latent,
            torch.tensor([500], device="meta"),
            encoder_hidden_states=torch.empty(1, 77, unet.config.cross_attention_dim, device="meta"),
            added_cond_kwargs=conditions,
        )
    )
    encode = tflop(lambda: vae.encode(torch.empty(1, 3, resolution, resolution, device="meta")))
    decode = tflop(lambda: vae.decode(latent))
    evaluations = int(steps * strength) * (2 if guided else 1)
    total = evaluations * unet_tflop + encode + decode
    print(
        f"{model} at {resolution}x{resolution}, {steps} steps x strength {strength} with CFG: "
        f"{evaluations} UNet evaluations x {unet_tflop:.2f} TFLOP + VAE {encode:.1f} + {decode:.1f} "
        f"= {total:.0f} TFLOP per variant"
    )
    for name, peak in PEAKS.items():
        seconds = total / (peak * EFFICIENCY)
        print(
            f"  {name}: {seconds:.2f} s/variant, {3600 / seconds:,.0f} variants/hour "
            f"at {EFFICIENCY:.0%} of {peak:.0f} TFLOP/s"
        )


def synthetic_originals(root: Path, count: int, side: int) -> pd.DataFrame:
    """`count` smooth random paintings laid out like data/ingested, landscape and portrait."""
    rows = []
    for index in range(count):
        size = (side, side * 3 // 4) if index % 3 else (side * 3 // 4, side)
        cells = np.random.default_rng(index).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        image = Image.fromarray(cells).resize(size, Image.Resampling.BICUBIC)
        digest = hashlib.sha256(image.tobytes()).hexdigest()
        path = f"images/{digest[:16]}.jpg"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / path, quality=95)
        rows.append(
            {
                "id": digest[:16],
                "hash": digest,
                "path": path,
                "artist": f"Artist {index}",
                "title": f"Painting {index}",
                "year": "1900",
                "style": "Impressionism",
                "genre": "landscape",
                "width": size[0],
                "height": size[1],
            }
        )
    return pd.DataFrame(rows)


def run_once(
    backend: SdxlBackend, manifest, config: GenerateParams, folder: Path, batch_size: int, limit: int | None = None
) -> tuple[float, float]:
    """Wall seconds for the whole path and seconds inside pipeline calls."""
    store = VariantStore(folder / "store")
    backend.pipeline_seconds = 0.0
    start = time.perf_counter()
    variants = plan_sdxl(manifest, config, 42, backend)[:limit]
    report = run_batches(make_batches(variants, backend, batch_size), backend, store, config.jpeg_quality)
    result = GenerationResult(variants=variants, reused=0, computed=report.computed, failures=report.failures)
    assemble(result, store, folder / "generated")
    total = time.perf_counter() - start
    assert report.computed == len(variants), report.failures
    return total, backend.pipeline_seconds


if __name__ == "__main__":
    main()
