"""The figures of bench/device_check.sh, one part per call, each printing one JSON object.

    python bench/device_figures.py env                      # the machine: GPU, torch, CUDA
    python bench/device_figures.py sdxl-tiny [--cpu]        # the generate stage's sdxl backend on a tiny refiner
    python bench/device_figures.py steps [--cpu]            # finetune and siamese train steps at the study's sizes
    python bench/device_figures.py sdxl-speed [--cpu]       # img2img denoising steps/s (real refiner if found)
    python bench/device_figures.py merge PARTS_DIR OUT.json # the parts and their statuses, as one JSON

`--cpu` runs the same code at toy sizes on the CPU: what proves the script end to end where there is no GPU
(its figures are not GPU figures, and say so). The study's sizes: finetune and siamese at image_size 224 and
bf16 (docs/training-at-scale.md), SDXL refiner img2img at 1024 px.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDY_IMAGE_SIZE = 224
STUDY_SDXL_RESOLUTION = 1024
REFINER = "stabilityai/stable-diffusion-xl-refiner-1.0"


def device_for(cpu: bool) -> torch.device:
    if cpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device (run with --cpu to check the script on a CPU)")
    return torch.device("cuda", 0)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step, device: torch.device, warmup: int, steps: int) -> float:
    """Seconds per call of `step` after `warmup` calls (cuDNN autotuning, allocator growth)."""
    for _ in range(warmup):
        step()
    synchronise(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronise(device)
    return (time.perf_counter() - started) / steps


def env_figures() -> dict:
    figures = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
               "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        figures |= {"gpu": properties.name, "gpu_memory_gib": properties.total_memory / 2**30,
                    "gpu_count": torch.cuda.device_count(), "bf16": torch.cuda.is_bf16_supported()}
    return figures


def train_step_seconds(model: torch.nn.Module, loss_of, autocast, device: torch.device, cpu: bool) -> float:
    """Seconds per AdamW step of `model` on the loss `loss_of()` computes."""
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with autocast:
            loss = loss_of()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return timed_steps(step, device, warmup=1 if cpu else 5, steps=2 if cpu else 20)


def step_figures(cpu: bool) -> dict:
    """Train steps per second of both trained models (AdamW, bf16 autocast and channels_last on a GPU), on
    random batches: the GPU's share of the finetune and siamese stages, without their loaders."""
    from artsim.learn.models import SiameseRegressor, build_classifier

    device = device_for(cpu)
    size, batch = (64, 4) if cpu else (STUDY_IMAGE_SIZE, 128)
    memory = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    images = torch.randn(batch, 3, size, size, device=device).to(memory_format=memory)
    figures = {"device": str(device), "image_size": size, "batch_size": batch,
               "precision": "bf16" if device.type == "cuda" else "fp32"}

    labels = torch.randint(0, 27, (batch,), device=device)
    classifier = build_classifier(27).to(device, memory_format=memory)
    seconds = train_step_seconds(classifier, lambda: torch.nn.functional.cross_entropy(classifier(images), labels),
                                 autocast, device, cpu)
    figures["finetune_images_per_s"] = batch / seconds
    siamese = SiameseRegressor(head_hidden=256).to(device, memory_format=memory)
    others, targets = torch.randn_like(images), torch.rand(batch, device=device)
    seconds = train_step_seconds(
        siamese, lambda: torch.nn.functional.mse_loss(siamese(images, others).float(), targets), autocast, device, cpu)
    figures["siamese_pairs_per_s"] = batch / seconds
    with torch.no_grad(), autocast:
        trunk = siamese.trunk.eval()
        seconds = timed_steps(lambda: trunk(images), device, warmup=1 if cpu else 5, steps=2 if cpu else 20)
    figures["trunk_inference_images_per_s"] = batch / seconds
    if device.type == "cuda":
        figures["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return figures


def sdxl_tiny_figures(cpu: bool) -> dict:
    """The generate stage (plan, render, store) with the sdxl backend on the tiny refiner the tests build."""
    from artsim.generate.run import generate
    from artsim.params import GenerateParams
    from tests.support.generate_fixtures import decodes, make_ingested, tiny_refiner

    device = device_for(cpu)
    work = Path(tempfile.mkdtemp(prefix="device-check-sdxl-"))
    originals = make_ingested(work / "ingested", count=4, sizes=[(120, 90), (90, 120), (64, 64), (100, 100)])
    config = GenerateParams(backend="sdxl", model=str(tiny_refiner(work)), resolution=64, steps=4, strengths=[0.5],
                            batch_size=4, device=str(device), store=work / "store")
    started = time.perf_counter()
    result = generate(originals, work / "ingested", config, seed=1)
    written = sorted((work / "store").rglob("*.jpg"))
    return {"device": str(device), "seconds": time.perf_counter() - started, "variants": len(result.variants),
            "computed": result.computed, "failures": result.failed_by_reason, "files": len(written),
            "all_decode": all(decodes(path) for path in written)}


def sdxl_speed_figures(cpu: bool, model: str | None) -> dict:
    """Denoising steps per second of StableDiffusionXLImg2ImgPipeline at the study's resolution: the real
    refiner when it is on disk (SDXL_MODEL, or the Hugging Face cache; nothing is downloaded), else the tiny
    one (then only the pipeline's overhead is measured, and the figure says so)."""
    import diffusers
    from PIL import Image

    from tests.support.generate_fixtures import tiny_refiner

    device = device_for(cpu)
    os.environ["HF_HUB_OFFLINE"] = "1"
    resolution = 128 if cpu else STUDY_SDXL_RESOLUTION
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    source, pipe = model or REFINER, None
    try:
        pipe = diffusers.StableDiffusionXLImg2ImgPipeline.from_pretrained(source, torch_dtype=dtype)
    except (OSError, ValueError):
        source = "tiny refiner (built in code; not the real one's speed)"
        pipe = diffusers.StableDiffusionXLImg2ImgPipeline.from_pretrained(
            tiny_refiner(Path(tempfile.mkdtemp(prefix="device-check-tiny-"))), torch_dtype=dtype)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    image = Image.new("RGB", (resolution, resolution), (120, 90, 60))
    steps, strength, batch = (4, 0.5, 1) if cpu else (25, 0.4, 4)
    run = lambda: pipe(prompt=["a painting"] * batch, image=[image] * batch, num_inference_steps=steps,  # noqa: E731
                       strength=strength, generator=torch.Generator(device).manual_seed(0))
    seconds = timed_steps(run, device, warmup=1, steps=1 if cpu else 3)
    denoised = int(steps * strength) * batch
    return {"device": str(device), "model": source, "resolution": resolution, "batch_size": batch,
            "steps": steps, "strength": strength, "seconds_per_batch": seconds,
            "denoising_steps_per_s_per_image": denoised / seconds, "images_per_s": batch / seconds}


def merge(parts: Path, out: Path) -> dict:
    """Every part's figures (NAME.json) and status (NAME.status: `rc seconds`), as one JSON at `out`."""
    merged: dict = {"parts": {}}
    for status in sorted(parts.glob("*.status")):
        name = status.stem
        rc, seconds = status.read_text().split()
        entry: dict = {"rc": int(rc), "seconds": float(seconds),
                       "status": {"0": "ok", "124": "timed out", "137": "killed"}.get(rc, "failed")}
        figures = parts / f"{name}.json"
        try:
            entry["figures"] = json.loads(figures.read_text()) if figures.is_file() else None
        except json.JSONDecodeError as exc:
            entry["figures"] = {"unreadable": str(exc)}
        log = parts / f"{name}.log"
        if int(rc) != 0 and log.is_file():
            entry["log_tail"] = log.read_text(errors="replace")[-2000:]
        merged["parts"][name] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1) + "\n")
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["env", "sdxl-tiny", "steps", "sdxl-speed", "merge"])
    parser.add_argument("paths", nargs="*", type=Path, help="merge: PARTS_DIR OUT.json")
    parser.add_argument("--cpu", action="store_true", help="toy sizes on the CPU: checks the script, not the GPU")
    parser.add_argument("--model", default=os.environ.get("SDXL_MODEL"), help="sdxl-speed: refiner folder or hub id")
    args = parser.parse_args()
    if args.part == "merge":
        merged = merge(*args.paths)
        print(json.dumps({name: entry["status"] for name, entry in merged["parts"].items()}))
        return
    figures = {"env": env_figures, "steps": lambda: step_figures(args.cpu),
               "sdxl-tiny": lambda: sdxl_tiny_figures(args.cpu),
               "sdxl-speed": lambda: sdxl_speed_figures(args.cpu, args.model)}[args.part]()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
